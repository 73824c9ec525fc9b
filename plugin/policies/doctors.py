"""What a doctor's record may hold (pure): fields, HPCSA numbers, mobile numbers, e-mail, aliases."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumberType

FIELDS = ("hpcsa_number", "title", "first_name", "last_name", "email", "mobile", "practice", "aliases", "username",
          "disabled", "hpcsa_active")
# Flags: a doctor who is disabled, or whose HPCSA registration is inactive, is never linked to a study.
FLAGS = ("disabled", "hpcsa_active")
REQUIRED = ("hpcsa_number", "last_name")
# The widths of the columns (store/models.py Doctor): a longer value is refused, never cut.
TEXT_LIMITS = {"title": 32, "first_name": 128, "last_name": 128, "practice": 256}
MAX_EMAIL_LENGTH = 256
MAX_MOBILE_INPUT = 64
MAX_ALIASES = 20
MAX_ALIAS_LENGTH = 128
MAX_SEARCH_LENGTH = 128
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
# A register prefix (MP medical practitioner, DP dentist, ...) and 6 or 7 digits, e.g. MP0123456.
HPCSA_NUMBER = re.compile(r"([A-Z]{2,3})[0-9]{6,7}")
MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
PHONE_REGION = "ZA"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
PAGE_NUMBER = re.compile(r"[0-9]{1,9}")
# Structure of the stored alias list that a search must not match (see alias_search_fragment).
ALIAS_LIST_PUNCTUATION = "[],"
FIELD_NAMED = re.compile(r'"([a-z_]+)"')


class Invalid(ValueError):
    """The input cannot be kept as sent; the message says which field and why."""

    @property
    def field(self) -> str:
        """The field the message starts by naming ("hpcsa_number": ...), if it does."""
        named = FIELD_NAMED.match(str(self))
        return named.group(1) if named else ""


def doctor_fields(data: Mapping[str, Any], prefixes: frozenset[str], *, creating: bool) -> dict[str, Any]:
    """The fields sent, checked and normalised; creating needs hpcsa_number and last_name.

    `username` comes back stripped, or None to untie the login (null or ""); its format is the
    accounts' rule, which the caller applies.
    """
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise Invalid(f"Unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}")
    missing = [name for name in REQUIRED if creating and name not in data]
    if missing:
        raise Invalid(f'"{missing[0]}" is required')
    fields: dict[str, Any] = {}
    if "hpcsa_number" in data:
        fields["hpcsa_number"] = hpcsa_number(_string(data["hpcsa_number"], "hpcsa_number"), prefixes)
    for name, limit in TEXT_LIMITS.items():
        if name in data:
            fields[name] = text(data[name], name, limit, required=name in REQUIRED)
    if "email" in data:
        fields["email"] = email(_optional_string(data["email"], "email"))
    if "mobile" in data:
        fields["mobile"] = mobile(_optional_string(data["mobile"], "mobile"))
    if "aliases" in data:
        fields["aliases"] = aliases(data["aliases"])
    if "username" in data:
        fields["username"] = _optional_string(data["username"], "username").strip() or None
    for name in FLAGS:
        if name in data:
            if not isinstance(data[name], bool):
                raise Invalid(f'"{name}" must be true or false')
            fields[name] = data[name]
    return fields


def hpcsa_number(value: str, prefixes: frozenset[str]) -> str:
    """MP0123456 from ' mp0123456 ': two or three capitals of a known register and 6 or 7 digits."""
    number = value.strip().upper()
    match = HPCSA_NUMBER.fullmatch(number)
    if match is None or match.group(1) not in prefixes:
        shown = repr(number[:40]) if number else "an empty value"
        raise Invalid(f'"hpcsa_number": {shown} is not an HPCSA registration number: give two or three capital '
                      f"letters of a register ({', '.join(sorted(prefixes))}) followed by 6 or 7 digits, "
                      "e.g. MP0123456")
    return number


def text(value: Any, name: str, limit: int, required: bool = False) -> str:
    """A name or practice: stripped, at most `limit` characters, one line."""
    checked = (_string(value, name) if required else _optional_string(value, name)).strip()
    if required and not checked:
        raise Invalid(f'"{name}" must not be empty')
    if len(checked) > limit:
        raise Invalid(f'"{name}" is at most {limit} characters')
    if CONTROL_CHARACTERS.search(checked):
        raise Invalid(f'"{name}" must not contain control characters (line breaks, tabs)')
    return checked


def email(value: str) -> str:
    """The address normalised (domain in lower case), or "" for none. Nothing is looked up."""
    address = value.strip()
    if not address:
        return ""
    if len(address) > MAX_EMAIL_LENGTH:
        raise Invalid(f'"email" is at most {MAX_EMAIL_LENGTH} characters')
    try:
        normalised = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise Invalid(f'"email" is not a usable e-mail address: {exc}') from exc
    if len(normalised) > MAX_EMAIL_LENGTH:
        raise Invalid(f'"email" is at most {MAX_EMAIL_LENGTH} characters')
    return normalised


def mobile(value: str) -> str:
    """A cell phone number in E.164 (+27825551234), read as South African unless it starts with +;
    or "" for none. Landlines cannot receive the SMS notifications this number is for."""
    written = value.strip()
    if not written:
        return ""
    refusal = Invalid(f'"mobile": {written[:40]!r} is not a mobile number; give a cell phone number such as '
                      "082 555 1234 or +27 82 555 1234")
    if len(written) > MAX_MOBILE_INPUT:
        raise refusal
    try:
        number = phonenumbers.parse(written, PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise refusal from exc
    if (number.extension or not phonenumbers.is_valid_number(number)
            or phonenumbers.number_type(number) not in MOBILE_TYPES):
        raise refusal
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def aliases(value: Any) -> list[str]:
    """Other spellings of the doctor's name in DICOM: trimmed, first spelling kept of those that
    differ only in case, at most MAX_ALIASES."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(alias, str) for alias in value):
        raise Invalid('"aliases" must be a list of strings')
    kept: dict[str, str] = {}
    for alias in (alias.strip() for alias in value):
        if not alias:
            raise Invalid('"aliases" must not contain empty names')
        if len(alias) > MAX_ALIAS_LENGTH:
            raise Invalid(f'"aliases": each name is at most {MAX_ALIAS_LENGTH} characters')
        # A backslash separates values in a DICOM element, so no single name holds one.
        if CONTROL_CHARACTERS.search(alias) or "\\" in alias:
            raise Invalid('"aliases" must not contain control characters or backslashes')
        kept.setdefault(alias.casefold(), alias)
    if len(kept) > MAX_ALIASES:
        raise Invalid(f'"aliases": at most {MAX_ALIASES} names')
    return list(kept.values())


def encode_aliases(names: list[str]) -> str:
    """The stored form: a compact JSON list, non-ASCII kept as is so a search can find it."""
    return json.dumps(names, ensure_ascii=False, separators=(",", ":"))


def decode_aliases(stored: str) -> list[str]:
    return json.loads(stored or "[]")


def search_text(q: str) -> str:
    """What to look for in names, practice and HPCSA number, "" for everything."""
    needle = q.strip()
    if len(needle) > MAX_SEARCH_LENGTH:
        raise Invalid(f'"q" is at most {MAX_SEARCH_LENGTH} characters')
    return needle


def alias_search_fragment(needle: str) -> str | None:
    """What to look for in the stored alias list (see encode_aliases) so that only a name matches.

    Escaped as inside a JSON string, the fragment cannot match across the quotes between names;
    a search made only of the list's own punctuation would match its brackets and commas, so
    aliases are not searched for it (no name is made of those alone).
    """
    if not needle.strip(ALIAS_LIST_PUNCTUATION):
        return None
    return json.dumps(needle, ensure_ascii=False)[1:-1]


def page(offset: str | None, limit: str | None) -> tuple[int, int]:
    """(offset, limit) of a list, from the query's text: offset >= 0, limit 1..MAX_LIMIT."""
    first = _page_number(offset, "offset", 0)
    count = _page_number(limit, "limit", DEFAULT_LIMIT)
    if not 1 <= count <= MAX_LIMIT:
        raise Invalid(f'"limit" must be between 1 and {MAX_LIMIT}')
    return first, count


def _page_number(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if not PAGE_NUMBER.fullmatch(value):
        raise Invalid(f'"{name}" must be a whole number from 0 (at most 9 digits)')
    return int(value)


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f'"{name}" must be a string')
    return value


def _optional_string(value: Any, name: str) -> str:
    """A string, or null for none."""
    return "" if value is None else _string(value, name)

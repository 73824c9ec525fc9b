"""Patient share links, the rules (pure): what a create request may ask for, when a share stops
working, what its secrets look like, and which core route one counted download may open."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plugin.policies.doctors import Invalid, email, mobile

SECRET_BYTES = 32  # 256-bit tokens, session cookies and download tickets
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters, no padding
MAX_STUDIES = 50
MAX_PASSWORD = 1024  # a longer one is refused when set, and is simply wrong when typed
MIN_PASSWORD = 6
MAX_DOWNLOADS = 1000
CONSENT_METHODS = ("verbal", "written", "electronic")
LANGUAGE_CODES = ("en", "af", "zu")  # the share page's languages (plugin/i18n.py has their catalogues)
MAX_CONSENT_NOTE = 500
MAX_STUDY_ID = 64
CREATE_KEYS = frozenset({"studies", "expires_at", "valid_hours", "password", "max_downloads", "one_time",
                         "language", "recipient", "notify", "consent"})
TICKET_SECONDS = 60.0  # a download ticket must be used this soon after it is issued
SHARE_PATH = "/share/"
REDACTED_TOKEN = "(link)"  # noqa: S105 - what stands for a token in the audit


class ShareInvalid(Invalid):
    """A create request that cannot be accepted: the message names the field."""


class State(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    EXHAUSTED = "exhausted"  # max_downloads reached
    USED = "used"  # a one-time link, opened once already


@dataclass(frozen=True)
class Consent:
    method: str
    recorded_by: str
    recorded_at: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "recorded_by": self.recorded_by,
                "recorded_at": dt.datetime.fromtimestamp(self.recorded_at, dt.UTC).isoformat(), "note": self.note}


@dataclass(frozen=True)
class ShareRequest:
    studies: tuple[str, ...]  # StudyInstanceUIDs or Orthanc ids, as given
    expires_at: float
    password: str | None
    max_downloads: int | None
    one_time: bool
    language: str
    email: str
    mobile: str
    notify: bool
    consent: Consent | None


@dataclass(frozen=True)
class ShareFacts:
    """What deciding a share's state needs (the store row has more)."""

    expires_at: float
    revoked: bool
    max_downloads: int | None
    downloads: int
    one_time: bool
    opens: int


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def secret_hash(secret: str) -> str:
    """What the store keeps of a token, a session cookie or a ticket: its SHA-256 (hex)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(stored: str, secret: str) -> bool:
    """Whether `secret` is the one `stored` was made from, compared in constant time."""
    return hmac.compare_digest(stored.encode(), secret_hash(secret).encode())


def encodable(text: str) -> bool:
    """Whether a string can be written as UTF-8 (JSON can carry a lone surrogate, which cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def looks_like_token(text: str) -> bool:
    return TOKEN_SHAPE.fullmatch(text) is not None


def state(share: ShareFacts, now: float, opening: bool = False) -> State:
    """Whether a share still works. `opening`: a new viewing session is asked for (which a one-time
    link allows once); an open session is not ended by its own link having been used."""
    if share.revoked:
        return State.REVOKED
    if share.expires_at <= now:
        return State.EXPIRED
    if share.max_downloads is not None and share.downloads >= share.max_downloads:
        return State.EXHAUSTED
    if opening and share.one_time and share.opens > 0:
        return State.USED
    return State.ACTIVE


def read_share_request(data: Mapping[str, Any], now: float, default_hours: float, max_hours: float,
                       recorded_by: str) -> ShareRequest:
    """A create request, checked field by field (ShareInvalid names the first bad one)."""
    unknown = sorted(set(data) - CREATE_KEYS)
    if unknown:
        raise ShareInvalid(f'Unknown field "{unknown[0]}" (known: {", ".join(sorted(CREATE_KEYS))})')
    recipient = data.get("recipient") or {}
    if not isinstance(recipient, dict) or set(recipient) - {"email", "mobile"}:
        raise ShareInvalid('"recipient" must be an object with "email" and/or "mobile"')
    address = _recipient(recipient, "email", email)
    number = _recipient(recipient, "mobile", mobile)
    notify = data.get("notify", bool(address or number))
    if not isinstance(notify, bool):
        raise ShareInvalid('"notify" must be true or false')
    if notify and not (address or number):
        raise ShareInvalid('"notify" needs a "recipient" with an "email" or a "mobile"')
    return ShareRequest(
        studies=_studies(data.get("studies")), expires_at=_expiry(data, now, default_hours, max_hours),
        password=_password(data.get("password")), max_downloads=_max_downloads(data.get("max_downloads")),
        one_time=_flag(data.get("one_time", False), "one_time"), language=_language(data.get("language", "en")),
        email=address, mobile=number, notify=notify, consent=_consent(data.get("consent"), now, recorded_by))


def explorer_share_request(data: Any) -> dict[str, Any]:
    """Orthanc Explorer 2's Share button's request (`PUT /auth/tokens/{type}`: `Resources` of
    `{"OrthancId", "DicomUid", "Level": "study"}`, and `ValidityDuration` in seconds or
    `ExpirationDate`) as our create request. Other fields it sends (`Type`, `Id`, `Username`) are
    not ours to trust: the caller is who signed in."""
    if not isinstance(data, dict):
        raise ShareInvalid("Send a JSON object")
    resources = data.get("Resources")
    if not isinstance(resources, list) or not resources:
        raise ShareInvalid('"Resources" must be a non-empty list of studies')
    studies = []
    for resource in resources:
        if not isinstance(resource, dict) or str(resource.get("Level", "")).lower() != "study":
            raise ShareInvalid('A share holds studies: each of "Resources" must have "Level": "study"')
        study = resource.get("OrthancId") or resource.get("DicomUid")
        if not isinstance(study, str) or not study:
            raise ShareInvalid('Each of "Resources" must name its "OrthancId" (or "DicomUid")')
        studies.append(study)
    request: dict[str, Any] = {"studies": studies}
    seconds, until = data.get("ValidityDuration"), data.get("ExpirationDate")
    if seconds is not None and until is not None:
        raise ShareInvalid('Give "ValidityDuration" or "ExpirationDate", not both')
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ShareInvalid('"ValidityDuration" must be a number of seconds')
        request["valid_hours"] = seconds / 3600
    elif until is not None:
        request["expires_at"] = until
    return request


def archive_target(study_oids: list[str], get_archives_many: bool) -> str | None:
    """The core route that streams a ZIP of exactly these studies: a study's own archive, or (from
    Orthanc 1.12.2, which takes a GET there) /tools/create-archive naming them; None when the core
    has no such route (several studies on an older Orthanc)."""
    if len(study_oids) == 1:
        return f"/studies/{study_oids[0]}/archive"
    if get_archives_many and study_oids:
        return "/tools/create-archive?resources=" + ",".join(study_oids)
    return None


def ticket_opens(target: str, method: str, uri: str, query: Mapping[str, str]) -> bool:
    """Whether a request is exactly the one a ticket was issued for: a GET of that path, with no
    query but the one the ticket names (any other spelling is not the ticket's)."""
    path, _, wanted = target.partition("?")
    if method != "GET" or uri != path:
        return False
    expected = dict(part.split("=", 1) for part in wanted.split("&")) if wanted else {}
    return dict(query) == expected


def cookie_value(header: str, name: str) -> str | None:
    """One cookie's value from a Cookie header (the last one when repeated); None when absent."""
    found = None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            found = value.strip()
    return found


def redacted_path(path: str) -> str:
    """A share page's path as the audit and logs may hold it: never the token."""
    if path.startswith(SHARE_PATH):
        rest = path[len(SHARE_PATH):]
        first, sep, tail = rest.partition("/")
        if first not in PAGE_WORDS:
            return SHARE_PATH + REDACTED_TOKEN + (sep + tail if sep else "")
    return path


# The first path segments under /share/ that are pages of a viewing session, not tokens.
PAGE_WORDS = frozenset({"view", "preview", "download", "report", "close"})


def _recipient(recipient: dict[str, Any], key: str, check: Any) -> str:
    value = recipient.get(key)
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise ShareInvalid(f'"recipient.{key}" must be a string')
    try:
        return check(value)
    except Invalid as exc:
        raise ShareInvalid(f'"recipient": {exc}') from None


def _studies(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ShareInvalid('"studies" must be a non-empty list of StudyInstanceUIDs or Orthanc study ids')
    if len(value) > MAX_STUDIES:
        raise ShareInvalid(f'"studies" holds at most {MAX_STUDIES} studies')
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > MAX_STUDY_ID \
                or any(c in item for c in "*?\\,"):
            raise ShareInvalid('Each of "studies" must be a StudyInstanceUID or an Orthanc study id')
    return tuple(dict.fromkeys(item.strip() for item in value))


def _expiry(data: Mapping[str, Any], now: float, default_hours: float, max_hours: float) -> float:
    given = [key for key in ("expires_at", "valid_hours") if data.get(key) is not None]
    if len(given) > 1:
        raise ShareInvalid('Give "expires_at" or "valid_hours", not both')
    if not given:
        return now + default_hours * 3600
    if given[0] == "valid_hours":
        hours = data["valid_hours"]
        try:
            hours = float(hours) if not isinstance(hours, bool) and isinstance(hours, int | float) else math.nan
        except OverflowError:  # a JSON integer too large for a float
            hours = math.inf
        if not math.isfinite(hours) or hours <= 0:
            raise ShareInvalid('"valid_hours" must be a number of hours more than 0')
        expires = now + hours * 3600
    else:
        expires = _instant(data["expires_at"])
        if expires <= now:
            raise ShareInvalid('"expires_at" is in the past')
    if expires - now > max_hours * 3600 + 1:
        raise ShareInvalid(f"A share may last at most {max_hours:g} hours (Gate.Shares.MaxValidHours)")
    return expires


def _instant(value: Any) -> float:
    if not isinstance(value, str) or len(value) > 40:
        raise ShareInvalid('"expires_at" must be an ISO 8601 date and time, e.g. "2026-12-31T17:00:00+02:00"')
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.astimezone()  # a time without a zone is the server's local time
        return when.timestamp()
    except (ValueError, OverflowError, OSError):  # unreadable, or beyond what this platform's clock holds
        raise ShareInvalid('"expires_at" must be an ISO 8601 date and time, e.g. "2026-12-31T17:00:00+02:00"') \
            from None


def _password(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not encodable(value):
        raise ShareInvalid('"password" must be a string of Unicode characters')
    if len(value) > MAX_PASSWORD:
        raise ShareInvalid(f'"password" is at most {MAX_PASSWORD} characters')
    if len(value) < MIN_PASSWORD:
        raise ShareInvalid(f'"password" is at least {MIN_PASSWORD} characters')
    return value


def _max_downloads(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DOWNLOADS:
        raise ShareInvalid(f'"max_downloads" must be a whole number from 1 to {MAX_DOWNLOADS} (or null: no limit)')
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ShareInvalid(f'"{name}" must be true or false')
    return value


def _language(value: Any) -> str:
    if not isinstance(value, str) or value not in LANGUAGE_CODES:
        raise ShareInvalid(f'"language" must be one of {", ".join(LANGUAGE_CODES)}')
    return value


def _consent(value: Any, now: float, recorded_by: str) -> Consent | None:
    """The patient's consent to receive the link: how it was given (and a note); who recorded it and
    when are the creator and now unless given."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"method", "note", "recorded_by", "recorded_at"}:
        raise ShareInvalid('"consent" must be an object with "method" and optionally "note", "recorded_by", '
                           '"recorded_at"')
    method = value.get("method")
    if method not in CONSENT_METHODS:
        raise ShareInvalid(f'"consent.method" must be one of {", ".join(CONSENT_METHODS)}')
    note = value.get("note", "")
    by = value.get("recorded_by", recorded_by)
    if not isinstance(note, str) or len(note) > MAX_CONSENT_NOTE:
        raise ShareInvalid(f'"consent.note" must be a string of at most {MAX_CONSENT_NOTE} characters')
    if not isinstance(by, str) or not by.strip() or len(by) > 128:
        raise ShareInvalid('"consent.recorded_by" must be a name of at most 128 characters')
    at = now
    if value.get("recorded_at") is not None:
        try:
            at = _instant(value["recorded_at"])
        except ShareInvalid:
            raise ShareInvalid('"consent.recorded_at" must be an ISO 8601 date and time') from None
        if at > now + 300:
            raise ShareInvalid('"consent.recorded_at" is in the future')
    return Consent(method, by.strip(), at, note.strip())

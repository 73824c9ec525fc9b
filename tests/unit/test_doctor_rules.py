"""policies/doctors.py: what a doctor's record may hold, each field normalised or refused."""

from __future__ import annotations

import pytest

from plugin.policies import doctors as rules
from plugin.policies.doctors import Invalid

PREFIXES = frozenset({"MP", "DP", "PS"})


def create(**fields):
    return rules.doctor_fields({"hpcsa_number": "MP0123456", "last_name": "Nkosi", **fields}, PREFIXES,
                               creating=True)


# -- HPCSA numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "kept"), [
    ("MP0123456", "MP0123456"),
    ("MP012345", "MP012345"),  # 6 digits
    ("mp0123456", "MP0123456"),
    ("  Ps0123456 \t", "PS0123456"),
    ("DP1234567", "DP1234567"),
])
def test_hpcsa_numbers_are_trimmed_and_upper_cased(written, kept):
    assert rules.hpcsa_number(written, PREFIXES) == kept


@pytest.mark.parametrize("written", [
    "MP01234567",  # 8 digits
    "MP01234",  # 5 digits
    "M0123456",  # one letter
    "ABCD123456",  # four letters
    "OT0123456",  # a register not configured here
    "MP 0123456",
    "MP-0123456",
    "0123456MP",
    "MP012345a",
    "MP０１２３４５６",  # full-width digits
    "",
    "   ",
])
def test_bad_hpcsa_numbers_are_refused_naming_the_format_and_the_prefixes(written):
    with pytest.raises(Invalid) as refused:
        rules.hpcsa_number(written, PREFIXES)
    message = str(refused.value)
    assert "hpcsa_number" in message and "6 or 7 digits" in message and "e.g. MP0123456" in message
    assert "DP, MP, PS" in message


def test_a_prefix_is_known_only_if_configured():
    assert rules.hpcsa_number("OT0123456", frozenset({"OT"})) == "OT0123456"
    with pytest.raises(Invalid):
        rules.hpcsa_number("MP0123456", frozenset({"OT"}))


# -- mobile numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "kept"), [
    ("082 555 1234", "+27825551234"),
    ("+27 82 555 1234", "+27825551234"),
    ("0825551234", "+27825551234"),
    ("(082) 555-1234", "+27825551234"),
    ("27825551234", "+27825551234"),
    (" 060 555 1234 ", "+27605551234"),
    ("+44 7911 123456", "+447911123456"),  # a foreign mobile, written with its country code
    ("", ""),
    ("   ", ""),
])
def test_mobile_numbers_are_kept_in_e164(written, kept):
    assert rules.mobile(written) == kept


@pytest.mark.parametrize("written", [
    "011 555 1234",  # a Johannesburg landline: cannot receive an SMS
    "021 555 1234",  # a Cape Town landline
    "087 555 1234",  # a VoIP number
    "garbage",
    "082 555 12345",  # a digit too many
    "+27825551234567",
    "082 555 1234 x12",  # an extension
    "0" * 80,
    "+",
])
def test_numbers_that_are_no_mobile_are_refused(written):
    with pytest.raises(Invalid, match='"mobile".*not a mobile number'):
        rules.mobile(written)


# -- e-mail ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "kept"), [
    ("dr.nkosi@clinic.example", "dr.nkosi@clinic.example"),
    (" Dr.Nkosi@Clinic.EXAMPLE ", "Dr.Nkosi@clinic.example"),  # the domain is case-insensitive
    ("", ""),
])
def test_email_addresses_are_normalised(written, kept):
    assert rules.email(written) == kept


@pytest.mark.parametrize("written", [
    "nkosi", "nkosi@", "@clinic.example", "nkosi@clinic", "nkosi@@clinic.example", "nkosi@clinic..example",
    "nk osi@clinic.example", "Dr Nkosi <nkosi@clinic.example>", "a" * 250 + "@clinic.example",
])
def test_bad_email_addresses_are_refused(written):
    with pytest.raises(Invalid, match='"email"'):
        rules.email(written)


# -- names, aliases ----------------------------------------------------------------------------------


def test_names_are_trimmed_and_limited_to_their_columns():
    fields = create(title=" Dr ", first_name=" Thandi ", last_name=" Nkosi ", practice="Sandton Radiology")
    assert (fields["title"], fields["first_name"], fields["last_name"]) == ("Dr", "Thandi", "Nkosi")
    assert create(title="T" * 32)["title"] == "T" * 32
    with pytest.raises(Invalid, match='"title" is at most 32'):
        create(title="T" * 33)
    with pytest.raises(Invalid, match='"practice" is at most 256'):
        create(practice="P" * 257)
    with pytest.raises(Invalid, match="control characters"):
        create(first_name="Thandi\nEvil")


def test_aliases_are_trimmed_and_deduplicated_ignoring_case():
    assert rules.aliases([" NKOSI^THANDI ", "nkosi^thandi", "Dr T Nkosi", "DR T NKOSI", "Nkosi T"]) == [
        "NKOSI^THANDI", "Dr T Nkosi", "Nkosi T"]
    assert rules.aliases([]) == [] and rules.aliases(None) == []
    assert len(rules.aliases([f"Name {i}" for i in range(20)] + ["NAME 0"])) == 20


@pytest.mark.parametrize(("value", "message"), [
    ("NKOSI^T", "list of strings"),
    (["NKOSI^T", 7], "list of strings"),
    (["NKOSI^T", "  "], "empty names"),
    (["N" * 129], "at most 128 characters"),
    ([f"Name {i}" for i in range(21)], "at most 20 names"),
    (["NKOSI\\T"], "backslashes"),
    (["NKOSI\tT"], "control characters"),
])
def test_bad_aliases_are_refused(value, message):
    with pytest.raises(Invalid, match=message):
        rules.aliases(value)


# -- the whole record --------------------------------------------------------------------------------


def test_a_record_comes_back_checked_and_normalised():
    assert create(hpcsa_number=" mp0123456", email="T@Clinic.example", mobile="082 555 1234",
                  aliases=["A", "a"], username=" drnkosi ") == {
        "hpcsa_number": "MP0123456", "last_name": "Nkosi", "email": "T@clinic.example", "mobile": "+27825551234",
        "aliases": ["A"], "username": "drnkosi"}


def test_null_or_empty_clears_optional_fields():
    assert rules.doctor_fields({"email": None, "mobile": "", "title": None, "aliases": None, "username": None},
                               PREFIXES, creating=False) == {
        "email": "", "mobile": "", "title": "", "aliases": [], "username": None}
    assert rules.doctor_fields({"username": "  "}, PREFIXES, creating=False) == {"username": None}


def test_a_change_names_only_the_fields_sent():
    assert rules.doctor_fields({}, PREFIXES, creating=False) == {}
    assert rules.doctor_fields({"practice": "Rosebank"}, PREFIXES, creating=False) == {"practice": "Rosebank"}


@pytest.mark.parametrize(("data", "creating", "message"), [
    ({"last_name": "Nkosi"}, True, '"hpcsa_number" is required'),
    ({"hpcsa_number": "MP0123456"}, True, '"last_name" is required'),
    ({"hpcsa_number": "MP0123456", "last_name": "  "}, True, '"last_name" must not be empty'),
    ({"last_name": ""}, False, '"last_name" must not be empty'),
    ({"last_name": None}, False, '"last_name" must be a string'),
    ({"hpcsa_number": None}, False, '"hpcsa_number" must be a string'),
    ({"hpcsa_number": 123456}, False, '"hpcsa_number" must be a string'),
    ({"first_name": ["Thandi"]}, False, '"first_name" must be a string'),
    ({"email": 5}, False, '"email" must be a string'),
    ({"mobile": 825551234}, False, '"mobile" must be a string'),
    ({"username": True}, False, '"username" must be a string'),
    ({"aliases": {"a": 1}}, False, "list of strings"),
    ({"hpcsa": "MP0123456"}, False, "Unknown field 'hpcsa'"),
    ({"id": 4, "last_name": "X"}, False, "Unknown field 'id'"),
    ({"created_at": "2024-01-01"}, False, "Unknown field 'created_at'"),
])
def test_bad_records_are_refused_naming_the_field(data, creating, message):
    with pytest.raises(Invalid, match=message):
        rules.doctor_fields(data, PREFIXES, creating=creating)


# -- search and pages --------------------------------------------------------------------------------


def test_search_text_is_trimmed_and_bounded():
    assert rules.search_text("  Nkosi ") == "Nkosi"
    assert rules.search_text("") == ""
    with pytest.raises(Invalid, match='"q"'):
        rules.search_text("x" * 129)


@pytest.mark.parametrize(("needle", "fragment"), [
    ("nkosi", "nkosi"),
    ('dr "t"', 'dr \\"t\\"'),  # as written inside a JSON string, so it cannot span two names
    ("ndlovu, t", "ndlovu, t"),
    ("é", "é"),
    (",", None),  # the list's own punctuation: would match every list of two names
    ("[", None),
    ("[]", None),
])
def test_the_alias_fragment_matches_only_inside_a_name(needle, fragment):
    assert rules.alias_search_fragment(needle) == fragment
    if fragment:
        stored = rules.encode_aliases(["x" + needle + "y", "other"])
        assert fragment in stored and rules.decode_aliases(stored)[0] == "x" + needle + "y"


@pytest.mark.parametrize("needle", ['b","c', 'b",', '","', ",", '"', "[", "]"])
def test_the_alias_fragment_cannot_match_the_list_itself(needle):
    fragment = rules.alias_search_fragment(needle)
    assert fragment is None or fragment not in rules.encode_aliases(["ab", "cd"])


@pytest.mark.parametrize(("offset", "limit", "page"), [
    (None, None, (0, 100)), ("", "", (0, 100)), ("20", "10", (20, 10)), ("0", "1000", (0, 1000)), ("5", "1", (5, 1)),
])
def test_pages(offset, limit, page):
    assert rules.page(offset, limit) == page


@pytest.mark.parametrize(("offset", "limit", "message"), [
    ("-1", None, '"offset"'), ("x", None, '"offset"'), ("1.5", None, '"offset"'), ("9" * 10, None, '"offset"'),
    (None, "0", '"limit" must be between 1 and 1000'), (None, "1001", '"limit" must be between 1 and 1000'),
    (None, "-5", '"limit"'), (None, "ten", '"limit"'),
])
def test_bad_pages_are_refused(offset, limit, message):
    with pytest.raises(Invalid, match=message):
        rules.page(offset, limit)

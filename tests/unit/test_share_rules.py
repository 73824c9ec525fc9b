"""policies/shares.py, the pure rules of patient share links: every field of a create request (accepted
and refused, the refusal naming the field), when a share stops working, which core route a download
may open, how a ticket matches a request, cookies, redaction of tokens, and the secrets' shape."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.policies.shares import (
    CREATE_KEYS,
    MAX_STUDIES,
    REDACTED_TOKEN,
    Consent,
    ShareFacts,
    ShareInvalid,
    State,
    archive_target,
    cookie_value,
    looks_like_token,
    new_secret,
    read_share_request,
    redacted_path,
    same_hash,
    secret_hash,
    state,
    ticket_opens,
)
from tests.unit.conftest import T0

DEFAULT_HOURS = 168.0
MAX_HOURS = 720.0
CREATOR = "drnkosi"
UID = "1.2.840.113619.2.55.3.1"
OID = "0a1b2c3d-4e5f6a7b-8c9d0e1f-2a3b4c5d-6e7f8a9b"


def read(**fields):
    data = {"studies": [UID], **fields}
    return read_share_request(data, T0, DEFAULT_HOURS, MAX_HOURS, CREATOR)


def refused(field: str, **fields) -> str:
    with pytest.raises(ShareInvalid) as caught:
        read(**fields)
    assert field in str(caught.value), f"{caught.value} does not name {field!r}"
    return str(caught.value)


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


@pytest.fixture
def sast(monkeypatch: pytest.MonkeyPatch):
    """The server's local time zone is South Africa's (UTC+2, no daylight saving)."""
    monkeypatch.setenv("TZ", "SAST-2")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -- the request as a whole ------------------------------------------------------------------------

def test_a_minimal_request_gets_every_default():
    wanted = read()
    assert wanted.studies == (UID,)
    assert wanted.expires_at == T0 + DEFAULT_HOURS * 3600
    assert (wanted.password, wanted.max_downloads, wanted.one_time, wanted.language) == (None, None, False, "en")
    assert (wanted.email, wanted.mobile, wanted.notify, wanted.consent) == ("", "", False, None)


def test_an_unknown_field_is_refused_by_name():
    message = refused("colour", colour="blue")
    assert "Unknown field" in message


def test_every_known_field_at_once_is_read():
    wanted = read(studies=[UID, OID], valid_hours=48, password="correct horse", max_downloads=3, one_time=True,
                  language="zu", recipient={"email": "thandi@example.co.za", "mobile": "082 123 4567"},
                  notify=False, consent={"method": "written", "note": "signed form"})
    assert CREATE_KEYS == {"studies", "expires_at", "valid_hours", "password", "max_downloads", "one_time",
                           "language", "recipient", "notify", "consent"}
    assert wanted.studies == (UID, OID)
    assert wanted.expires_at == T0 + 48 * 3600
    assert (wanted.password, wanted.max_downloads, wanted.one_time, wanted.language) == ("correct horse", 3, True,
                                                                                        "zu")
    assert (wanted.email, wanted.mobile, wanted.notify) == ("thandi@example.co.za", "+27821234567", False)
    assert wanted.consent == Consent("written", CREATOR, T0, "signed form")


# -- studies ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("studies", [None, "1.2.3", {"a": 1}, [], 3, [None], [1], [""], ["   "], ["x" * 65],
                                     [UID, 7], [["1.2.3"]]], ids=repr)
def test_studies_that_are_refused(studies):
    refused("studies", studies=studies)


def test_a_missing_studies_field_is_refused():
    with pytest.raises(ShareInvalid, match="studies"):
        read_share_request({}, T0, DEFAULT_HOURS, MAX_HOURS, CREATOR)


@pytest.mark.parametrize("bad", ["1.2.*", "1.2.?", "1.2\\3", "1.2,1.3", "*"])
def test_studies_with_wildcards_or_list_separators_are_refused(bad):
    refused("studies", studies=[UID, bad])


def test_at_most_so_many_studies():
    assert len(read(studies=[f"1.2.{n}" for n in range(MAX_STUDIES)]).studies) == MAX_STUDIES
    refused("studies", studies=[f"1.2.{n}" for n in range(MAX_STUDIES + 1)])


def test_a_study_id_of_64_characters_is_the_longest():
    assert read(studies=["1" * 64]).studies == ("1" * 64,)


def test_duplicates_collapse_in_the_order_first_given_and_spaces_are_trimmed():
    assert read(studies=[UID, OID, UID, f" {UID} ", OID]).studies == (UID, OID)


# -- expiry ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("hours", [1, 0.5, 24, 719.5, 720])
def test_valid_hours_that_are_accepted(hours):
    assert read(valid_hours=hours).expires_at == T0 + hours * 3600


@pytest.mark.parametrize("hours", [0, -1, -0.0, math.nan, math.inf, -math.inf, True, False, "24", [24], {}],
                         ids=repr)
def test_valid_hours_that_are_refused(hours):
    refused("valid_hours", valid_hours=hours)


def test_valid_hours_beyond_the_maximum_are_refused_naming_the_setting():
    assert "MaxValidHours" in refused("720", valid_hours=721)


def test_a_huge_whole_number_of_valid_hours_is_refused_not_crashed_on():
    """JSON integers have no limit; json.loads reads 1e400 written as digits as a Python int."""
    refused("valid_hours", valid_hours=10**400)


def test_expires_at_with_an_offset_or_z():
    later = T0 + 86400
    assert read(expires_at=iso(later)).expires_at == later
    assert read(expires_at=iso(later).replace("+00:00", "Z")).expires_at == later
    assert read(expires_at=dt.datetime.fromtimestamp(later, dt.timezone(dt.timedelta(hours=2))).isoformat()
                ).expires_at == later


def test_expires_at_without_a_zone_is_the_servers_local_time(sast):
    # T0 is 2023-11-14T22:13:20Z: 2023-11-16 10:00 in Johannesburg is 08:00 UTC.
    expected = dt.datetime(2023, 11, 16, 8, 0, tzinfo=dt.UTC).timestamp()
    assert read(expires_at="2023-11-16T10:00:00").expires_at == expected


@pytest.mark.parametrize("when", [T0 - 1, T0])
def test_expires_at_now_or_past_is_refused(when):
    assert "past" in refused("expires_at", expires_at=iso(when))


def test_expires_at_up_to_the_maximum():
    assert read(expires_at=iso(T0 + MAX_HOURS * 3600)).expires_at == T0 + MAX_HOURS * 3600
    refused("720", expires_at=iso(T0 + MAX_HOURS * 3600 + 2))


@pytest.mark.parametrize("value", ["tomorrow", "", "2023-13-01T00:00:00Z", "2023-11-16 25:00", 1700086400,
                                   ["2023-11-16T10:00:00Z"], "2023-11-16T10:00:00+02:00" + " " * 20])
def test_expires_at_that_is_no_date_is_refused(value):
    refused("expires_at", expires_at=value)


def test_expires_at_of_year_one_without_a_zone_is_refused_not_crashed_on():
    with pytest.raises(ShareInvalid, match="expires_at"):
        read(expires_at="0001-01-01T00:00:00")


def test_expires_at_and_valid_hours_together_are_refused():
    message = refused("expires_at", expires_at=iso(T0 + 3600), valid_hours=1)
    assert "valid_hours" in message


def test_a_null_expiry_field_counts_as_absent():
    assert read(expires_at=None, valid_hours=2).expires_at == T0 + 7200
    assert read(expires_at=None).expires_at == T0 + DEFAULT_HOURS * 3600


# -- password --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "kept"), [(None, None), ("", None), ("123456", "123456"), ("p" * 1024, "p" * 1024),
                                             ("pässwörd ✓", "pässwörd ✓")], ids=["none", "empty", "6", "1024", "utf8"])
def test_passwords_that_are_accepted(given, kept):
    assert read(password=given).password == kept


@pytest.mark.parametrize("given", ["12345", "p" * 1025, "p" * 10_000, 123456, ["secret1"], True], ids=repr)
def test_passwords_that_are_refused(given):
    refused("password", password=given)


# -- downloads, one-time, language ----------------------------------------------------------------

@pytest.mark.parametrize(("given", "kept"), [(None, None), (1, 1), (1000, 1000)])
def test_max_downloads_that_are_accepted(given, kept):
    assert read(max_downloads=given).max_downloads == kept


@pytest.mark.parametrize("given", [0, -1, 1001, True, False, 1.5, 2.0, "3", 10**400], ids=repr)
def test_max_downloads_that_are_refused(given):
    refused("max_downloads", max_downloads=given)


@pytest.mark.parametrize("given", ["true", 1, 0, None, "yes"], ids=repr)
def test_one_time_must_be_a_boolean(given):
    refused("one_time", one_time=given)
    assert read(one_time=True).one_time is True


@pytest.mark.parametrize("code", ["en", "af", "zu"])
def test_the_share_languages(code):
    assert read(language=code).language == code


@pytest.mark.parametrize("code", ["EN", "fr", "", None, "en-ZA", ["en"]], ids=repr)
def test_other_languages_are_refused(code):
    refused("language", language=code)


# -- recipient and notify --------------------------------------------------------------------------

def test_the_recipients_address_and_number_are_normalised():
    wanted = read(recipient={"email": "  Thandi@Example.CO.ZA ", "mobile": "082 123 4567"})
    assert (wanted.email, wanted.mobile) == ("Thandi@example.co.za", "+27821234567")
    assert read(recipient={"mobile": "+27 82 123 4567"}).mobile == "+27821234567"


@pytest.mark.parametrize("recipient", [
    {"email": "not-an-address"}, {"email": "thandi@"}, {"email": 7}, {"mobile": "021 123 4567"},
    {"mobile": "12"}, {"mobile": 821234567}, {"fax": "021 123 4567"}, {"email": "a@b.co", "name": "Thandi"},
    "thandi@example.co.za", ["thandi@example.co.za"]], ids=repr)
def test_recipients_that_are_refused(recipient):
    refused("recipient", recipient=recipient)


def test_empty_recipient_values_mean_none():
    wanted = read(recipient={"email": "", "mobile": None})
    assert (wanted.email, wanted.mobile, wanted.notify) == ("", "", False)


def test_notify_defaults_to_true_with_a_recipient_and_false_without():
    assert read(recipient={"email": "thandi@example.co.za"}).notify is True
    assert read(recipient={"mobile": "0821234567"}).notify is True
    assert read().notify is False
    assert read(recipient={"email": "thandi@example.co.za"}, notify=False).notify is False


def test_notify_without_a_recipient_is_refused():
    refused("notify", notify=True)
    refused("notify", notify=True, recipient={})


@pytest.mark.parametrize("given", ["true", 1, None], ids=repr)
def test_notify_must_be_a_boolean(given):
    refused("notify", notify=given, recipient={"email": "thandi@example.co.za"})


# -- consent ---------------------------------------------------------------------------------------

def test_consent_recorded_by_the_creator_now_unless_given():
    assert read(consent={"method": "verbal"}).consent == Consent("verbal", CREATOR, T0, "")
    given = read(consent={"method": "electronic", "recorded_by": "  Sr Dlamini ", "note": " by phone ",
                          "recorded_at": iso(T0 - 3600)}).consent
    assert given == Consent("electronic", "Sr Dlamini", T0 - 3600, "by phone")
    assert given.as_dict() == {"method": "electronic", "recorded_by": "Sr Dlamini",
                               "recorded_at": "2023-11-14T21:13:20+00:00", "note": "by phone"}


@pytest.mark.parametrize("method", ["verbal", "written", "electronic"])
def test_the_consent_methods(method):
    assert read(consent={"method": method}).consent.method == method


@pytest.mark.parametrize(("consent", "field"), [
    ({"method": "oral"}, "consent.method"), ({}, "consent.method"), ({"method": None}, "consent.method"),
    ({"method": ["verbal"]}, "consent.method"),
    ({"method": "verbal", "note": "n" * 501}, "consent.note"), ({"method": "verbal", "note": 5}, "consent.note"),
    ({"method": "verbal", "recorded_by": "   "}, "consent.recorded_by"),
    ({"method": "verbal", "recorded_by": "x" * 129}, "consent.recorded_by"),
    ({"method": "verbal", "recorded_by": 5}, "consent.recorded_by"),
    ({"method": "verbal", "recorded_at": "yesterday"}, "consent.recorded_at"),
    ({"method": "verbal", "recorded_at": 1699999999}, "consent.recorded_at"),
    ({"method": "verbal", "recorded_at": iso(T0 + 301)}, "consent.recorded_at"),
    ({"method": "verbal", "witness": "x"}, "consent"), ("verbal", "consent"), (["verbal"], "consent"),
], ids=repr)
def test_consents_that_are_refused(consent, field):
    refused(field, consent=consent)


def test_consent_note_of_500_characters_and_a_time_a_few_minutes_ahead_are_accepted():
    consent = read(consent={"method": "verbal", "note": "n" * 500, "recorded_at": iso(T0 + 300)}).consent
    assert (len(consent.note), consent.recorded_at) == (500, T0 + 300)


def test_consent_recorded_in_year_one_without_a_zone_is_refused_not_crashed_on():
    with pytest.raises(ShareInvalid, match="consent.recorded_at"):
        read(consent={"method": "verbal", "recorded_at": "0001-01-01T00:00:00"})


# -- anything at all -------------------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text()
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
FIELD_VALUES = {
    "studies": st.lists(st.text(max_size=70) | JSON_SCALARS, max_size=4) | JSON,
    "expires_at": st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()) | st.text() | JSON,
    "valid_hours": st.integers() | st.floats() | JSON,
    "password": st.text(max_size=30) | JSON,
    "max_downloads": st.integers() | JSON,
    "one_time": JSON,
    "language": st.sampled_from(["en", "af", "zu", "EN"]) | JSON,
    "recipient": st.fixed_dictionaries({}, optional={"email": st.emails() | st.text() | JSON,
                                                     "mobile": st.from_regex(r"\+?[0-9 ]{0,14}", fullmatch=True)
                                                     | JSON}) | JSON,
    "notify": JSON,
    "consent": st.fixed_dictionaries({}, optional={
        "method": st.sampled_from(["verbal", "written", "x"]) | JSON, "note": st.text(max_size=20) | JSON,
        "recorded_by": st.text(max_size=20) | JSON,
        "recorded_at": st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()) | JSON}) | JSON,
}
REQUESTS = st.fixed_dictionaries({}, optional=FIELD_VALUES) | st.dictionaries(st.text(max_size=12), JSON, max_size=4)


@settings(max_examples=200, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(REQUESTS)
def test_any_json_object_is_read_or_refused_with_share_invalid_and_nothing_else(data):
    try:
        wanted = read_share_request(data, T0, DEFAULT_HOURS, MAX_HOURS, CREATOR)
    except ShareInvalid:
        return
    assert wanted.studies and len(wanted.studies) <= MAX_STUDIES
    assert T0 < wanted.expires_at <= T0 + MAX_HOURS * 3600 + 1
    assert wanted.language in ("en", "af", "zu")
    assert not wanted.notify or wanted.email or wanted.mobile


# -- state -----------------------------------------------------------------------------------------

def facts(**changes) -> ShareFacts:
    base = {"expires_at": T0 + 3600, "revoked": False, "max_downloads": None, "downloads": 0, "one_time": False,
            "opens": 0}
    return ShareFacts(**{**base, **changes})


@pytest.mark.parametrize(("share", "now", "opening", "expected"), [
    (facts(), T0, False, State.ACTIVE),
    (facts(), T0 + 3599, True, State.ACTIVE),
    (facts(), T0 + 3600, False, State.EXPIRED),
    (facts(revoked=True), T0, False, State.REVOKED),
    (facts(revoked=True), T0 + 7200, False, State.REVOKED),  # revoked beats expired
    (facts(revoked=True, max_downloads=1, downloads=1, one_time=True, opens=1), T0, True, State.REVOKED),
    (facts(max_downloads=2, downloads=1), T0, False, State.ACTIVE),
    (facts(max_downloads=2, downloads=2), T0, False, State.EXHAUSTED),
    (facts(max_downloads=2, downloads=3), T0, False, State.EXHAUSTED),
    (facts(max_downloads=1, downloads=1), T0 + 3600, False, State.EXPIRED),  # expired beats exhausted
    (facts(max_downloads=1, downloads=1, one_time=True, opens=1), T0, True, State.EXHAUSTED),
    (facts(one_time=True, opens=0), T0, True, State.ACTIVE),
    (facts(one_time=True, opens=1), T0, True, State.USED),
    (facts(one_time=True, opens=1), T0, False, State.ACTIVE),  # its open session goes on
    (facts(one_time=False, opens=5), T0, True, State.ACTIVE),
    (facts(one_time=True, opens=1), T0 + 3600, True, State.EXPIRED),
])
def test_state(share, now, opening, expected):
    assert state(share, now, opening=opening) is expected


# -- archive target and tickets --------------------------------------------------------------------

@pytest.mark.parametrize(("oids", "many", "expected"), [
    (["s1"], False, "/studies/s1/archive"),
    (["s1"], True, "/studies/s1/archive"),
    (["s1", "s2"], True, "/tools/create-archive?resources=s1,s2"),
    (["s2", "s1", "s3"], True, "/tools/create-archive?resources=s2,s1,s3"),
    (["s1", "s2"], False, None),
    ([], True, None),
    ([], False, None),
])
def test_archive_target(oids, many, expected):
    assert archive_target(oids, many) == expected


ONE = "/studies/s1/archive"
MANY = "/tools/create-archive?resources=s1,s2"


@pytest.mark.parametrize(("target", "method", "uri", "query", "opens"), [
    (ONE, "GET", "/studies/s1/archive", {}, True),
    (ONE, "POST", "/studies/s1/archive", {}, False),
    (ONE, "HEAD", "/studies/s1/archive", {}, False),
    (ONE, "get", "/studies/s1/archive", {}, False),
    (ONE, "GET", "/studies/s2/archive", {}, False),
    (ONE, "GET", "/studies/s1/archive/", {}, False),
    (ONE, "GET", "/studies/S1/archive", {}, False),
    (ONE, "GET", "/Studies/s1/archive", {}, False),
    (ONE, "GET", "/studies/s1/media", {}, False),
    (ONE, "GET", "/studies/s1/archive", {"transcode": "1.2.840.10008.1.2"}, False),
    (MANY, "GET", "/tools/create-archive", {"resources": "s1,s2"}, True),
    (MANY, "GET", "/tools/create-archive", {"resources": "s2,s1"}, False),
    (MANY, "GET", "/tools/create-archive", {"resources": "s1"}, False),
    (MANY, "GET", "/tools/create-archive", {"resources": "s1,s2,s3"}, False),
    (MANY, "GET", "/tools/create-archive", {}, False),
    (MANY, "GET", "/tools/create-archive", {"resources": "s1,s2", "filename": "x.zip"}, False),
    (MANY, "GET", "/tools/create-archive", {"Resources": "s1,s2"}, False),
    (MANY, "POST", "/tools/create-archive", {"resources": "s1,s2"}, False),
    (MANY, "GET", "/tools/create-media", {"resources": "s1,s2"}, False),
])
def test_a_ticket_opens_exactly_its_request(target, method, uri, query, opens):
    assert ticket_opens(target, method, uri, query) is opens


# -- cookies ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "value"), [
    ("gate_share=abc", "abc"),
    ("a=1; gate_share=abc; b=2", "abc"),
    ("a=1;gate_share=abc;b=2", "abc"),
    ("  a=1 ;   gate_share=abc   ; b=2", "abc"),
    ("gate_share=first; gate_share=second", "second"),
    ("gate_share=abc=def", "abc=def"),
    ("gate_share=", ""),
    ("", None),
    ("a=1; b=2", None),
    ("xgate_share=abc", None),
    ("gate_share_x=abc", None),
    ("xgate_share=abc; gate_sharex=def", None),
    ("gate_share", None),
    ("GATE_SHARE=abc", None),
])
def test_cookie_value(header, value):
    assert cookie_value(header, "gate_share") == value


# -- redaction -------------------------------------------------------------------------------------

TOKEN = "Ab-_" + "x" * 39


@pytest.mark.parametrize(("path", "expected"), [
    (f"/share/{TOKEN}", f"/share/{REDACTED_TOKEN}"),
    (f"/share/{TOKEN}/", f"/share/{REDACTED_TOKEN}/"),
    (f"/share/{TOKEN}/more/parts", f"/share/{REDACTED_TOKEN}/more/parts"),
    ("/share/not-a-token-shape", f"/share/{REDACTED_TOKEN}"),
    ("/share/view", "/share/view"),
    ("/share/download", "/share/download"),
    ("/share/close", "/share/close"),
    ("/share/report/s1", "/share/report/s1"),
    ("/share/preview/0a1b2c3d-4e5f6a7b-8c9d0e1f-2a3b4c5d-6e7f8a9b", "/share/preview/0a1b2c3d-4e5f6a7b-8c9d0e1f-"
                                                                     "2a3b4c5d-6e7f8a9b"),
    ("/gate/api/shares/3", "/gate/api/shares/3"),
    ("/shares/x", "/shares/x"),
    ("/studies/s1", "/studies/s1"),
])
def test_redacted_path(path, expected):
    assert redacted_path(path) == expected


@settings(max_examples=200, derandomize=True, database=None)
@given(st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True), st.sampled_from(["", "/", "/x/y", "?lang=af"]))
def test_no_token_survives_redaction(token, tail):
    assert token not in redacted_path(f"/share/{token}{tail}")


# -- secrets ---------------------------------------------------------------------------------------

def test_secrets_are_43_url_safe_characters_and_never_repeat():
    made = {new_secret() for _ in range(200)}
    assert len(made) == 200
    for secret in made:
        assert len(secret) == 43 and looks_like_token(secret)
        assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_secret_hash_is_sha256_hex_and_same_hash_compares_it():
    secret = new_secret()
    stored = secret_hash(secret)
    assert stored == hashlib.sha256(secret.encode()).hexdigest() and len(stored) == 64
    assert same_hash(stored, secret) is True
    assert same_hash(stored, secret + "x") is False
    assert same_hash(stored, secret[:-1]) is False
    assert same_hash(stored.upper(), secret) is False
    assert same_hash("", secret) is False


@pytest.mark.parametrize("text", ["", "a" * 42, "a" * 44, "a" * 42 + "=", "a" * 42 + "+", "a" * 42 + "/",
                                  "a" * 43 + "\n", "a" * 42 + "é", " " + "a" * 42, "view"])
def test_what_does_not_look_like_a_token(text):
    assert looks_like_token(text) is False


# -- Orthanc Explorer 2's Share button --------------------------------------------------------------

def test_explorer_share_request_becomes_our_create_request():
    from plugin.policies.shares import explorer_share_request

    body = {"Resources": [{"OrthancId": "a-b", "DicomUid": "1.2", "Level": "study"}],
            "Type": "stone-viewer-publication", "ValidityDuration": 1296000, "Username": "root1", "Id": "x"}
    assert explorer_share_request(body) == {"studies": ["a-b"], "valid_hours": 360.0}
    by_uid = {"Resources": [{"DicomUid": "1.2", "Level": "Study"}], "ExpirationDate": "2027-01-01T00:00:00Z"}
    assert explorer_share_request(by_uid) == {"studies": ["1.2"], "expires_at": "2027-01-01T00:00:00Z"}


@pytest.mark.parametrize("body", [
    [], {}, {"Resources": []}, {"Resources": "a"}, {"Resources": [{"OrthancId": "a", "Level": "series"}]},
    {"Resources": [{"OrthancId": "a"}]}, {"Resources": [{"Level": "study"}]}, {"Resources": ["a"]},
    {"Resources": [{"OrthancId": "a", "Level": "study"}], "ValidityDuration": "10"},
    {"Resources": [{"OrthancId": "a", "Level": "study"}], "ValidityDuration": True},
    {"Resources": [{"OrthancId": "a", "Level": "study"}], "ValidityDuration": 10, "ExpirationDate": "2027-01-01"},
])
def test_explorer_share_requests_that_are_not_ours_to_take(body):
    from plugin.policies.shares import explorer_share_request

    with pytest.raises(ShareInvalid):
        explorer_share_request(body)


@pytest.mark.parametrize(("path", "own"), [
    ("/auth/tokens/stone-viewer-publication", True), ("/auth/tokens/x", True), ("/auth/tokens", False),
    ("/auth/tokens/x/y", False), ("/AUTH/tokens/x", False), ("/auth/Tokens/x", False), ("/auth/user/profile", False),
])
def test_only_the_share_buttons_route_under_auth_reaches_a_handler(path, own):
    from plugin.policies.routes import classify

    route = classify("PUT", path, {}, {})
    assert route.own_route is own and (route.family == "share_tokens") is own

"""notify/messages.py's share_messages: a patient's link by e-mail and SMS in the share's language (English,
Afrikaans, isiZulu), the SMS in plain GSM-safe ASCII, each keyed so it goes once, the reminder apart."""

from __future__ import annotations

import datetime as dt
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin import i18n
from plugin.notify import messages as messages_module
from plugin.notify.messages import share_messages
from tests.unit.conftest import T0

EMAIL = "thandi.mokoena@example.co.za"
MOBILE = "+27821234567"
LINK = "https://pacs.example.co.za/share/Ab-_0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
EXPIRES = T0 + 100 * 86400  # late February 2024
PRACTICE = "Dr Zoë Müller & Co [Umhlanga]"
LANGUAGES = ("en", "af", "zu")
# Printable ASCII in the GSM 03.38 basic alphabet: all of it but these (escaped as two characters, or absent).
NOT_GSM_BASIC = set("`[\\]^{|}~")


def gsm_safe(text: str) -> bool:
    return all(32 <= ord(c) < 127 and c not in NOT_GSM_BASIC for c in text)


def folded(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def make(language: str = "en", *, reminder: bool = False, practice: str = PRACTICE, has_password: bool = True,
         email: str = EMAIL, mobile: str = MOBILE, expires: float = EXPIRES, share_id: int = 7):
    return share_messages(share_id, email, mobile, LINK, expires, language, practice, has_password, reminder=reminder)


@pytest.mark.parametrize("reminder", [False, True], ids=["first", "reminder"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_an_email_and_an_sms_keyed_by_the_share(language, reminder):
    email, sms = make(language, reminder=reminder)
    prefix = "share-reminder" if reminder else "share"
    kind = "share_reminder" if reminder else "share"
    assert (email.idempotency_key, email.channel, email.kind, email.recipient) == (f"{prefix}:7:email", "email", kind,
                                                                                   EMAIL)
    assert (sms.idempotency_key, sms.channel, sms.kind, sms.recipient) == (f"{prefix}:7:sms", "sms", kind, MOBILE)
    assert (sms.subject, sms.html) == ("", "")
    assert all(m.study_uid is None and m.doctor_id is None for m in (email, sms))


@pytest.mark.parametrize("reminder", [False, True], ids=["first", "reminder"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_email_names_the_practice_and_holds_the_link_and_the_expiry_in_the_shares_language(language, reminder):
    email, _sms = make(language, reminder=reminder)
    day = i18n.day(EXPIRES, language)
    assert PRACTICE in email.subject and "\n" not in email.subject
    assert LINK in email.text and day in email.text
    assert f'href="{LINK}"' in email.html and day in email.html
    assert f'lang="{language}"' in email.html
    assert "Dr Zoë Müller &amp; Co [Umhlanga]" in email.html and "Müller & Co" not in email.html


def test_the_expiry_is_written_as_each_language_writes_dates():
    assert i18n.day(EXPIRES, "af") != i18n.day(EXPIRES, "en")
    assert i18n.day(EXPIRES, "af") in make("af")[0].text
    assert i18n.day(EXPIRES, "en") not in make("af")[0].text


@pytest.mark.parametrize("language", ["af", "zu"])
def test_the_messages_are_in_the_shares_language(language):
    english_email, english_sms = make("en")
    email, sms = make(language)
    assert email.subject != english_email.subject
    assert email.text.split("\n")[0] != english_email.text.split("\n")[0]
    assert sms.text.split(":")[1] != english_sms.text.split(":")[1]
    reminder_email, _ = make(language, reminder=True)
    assert reminder_email.subject not in (email.subject, make("en", reminder=True)[0].subject)


@pytest.mark.parametrize("reminder", [False, True], ids=["first", "reminder"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_sms_is_gsm_safe_ascii_with_the_practice_the_expiry_and_the_link(language, reminder):
    _email, sms = make(language, reminder=reminder)
    assert gsm_safe(sms.text), sms.text
    assert sms.text.startswith("Dr Zoe Muller & Co Umhlanga: ")
    assert sms.text.endswith(LINK)
    assert folded(i18n.day(EXPIRES, language)) in sms.text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("month", range(1, 13))
def test_the_sms_is_gsm_safe_in_every_month(language, month):
    expires = dt.datetime(2026, month, 15, 12, 0).timestamp()
    assert gsm_safe(make(language, expires=expires)[1].text)
    assert gsm_safe(make(language, expires=expires, reminder=True)[1].text)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_date_with_accents_or_typography_is_folded_in_the_sms_only(monkeypatch, language):
    monkeypatch.setattr(messages_module.i18n, "day", lambda _epoch, _code: "1 Mär\u2013Déc 2026 [ê]")
    email, sms = make(language)
    assert "1 Mär\u2013Déc 2026 [ê]" in email.text
    assert gsm_safe(sms.text) and "1 Mar-Dec 2026 e" in sms.text


@pytest.mark.parametrize(("practice", "words"), [
    ("O\u2019Neil \u2013 Radiology", ["O'Neil", "-", "Radiology"]),
    ("Umhlanga\nRadiology\t Inc", ["Umhlanga", "Radiology", "Inc"]),
    ("{Radiology} ^ | ~ `Umhlanga`", ["Radiology", "Umhlanga"]),
    ("放射科", ["Orthanc", "Gate"]),
    ("A" * 60, ["A" * 40]),
])
def test_the_practice_name_is_made_sms_safe(practice, words):
    email, sms = make(practice=practice)
    assert sms.text.split(": ")[0].split() == words and gsm_safe(sms.text)
    assert "\n" not in email.subject and "\t" not in email.subject


@pytest.mark.parametrize("control", ["\x1b", "\x00"], ids=["escape", "nul"])
def test_control_characters_of_a_practice_name_do_not_reach_the_sms(control):
    """ESC (0x1B) is GSM 7-bit's escape to its extension table: it would change the next character."""
    _email, sms = make(practice=f"Umhlanga{control}Radiology")
    assert gsm_safe(sms.text), repr(sms.text)


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cc",)), max_size=80), st.sampled_from(LANGUAGES), st.booleans())
def test_any_practice_name_gives_a_gsm_safe_sms_and_a_one_line_subject(practice, language, reminder):
    email, sms = make(language, practice=practice, reminder=reminder)
    assert gsm_safe(sms.text)
    assert sms.text.endswith(LINK)
    assert "\n" not in email.subject and "\r" not in email.subject


def test_the_password_is_mentioned_only_as_needed_and_never_sent():
    with_password, _ = make(has_password=True)
    without, _ = make(has_password=False)
    assert with_password.text != without.text and len(with_password.text) > len(without.text)
    assert "password" in with_password.text.lower() and "password" not in without.text.lower()
    assert "password" not in make(has_password=True)[1].text.lower()  # the SMS says nothing of it


def test_the_reminder_is_keyed_apart_from_the_first_message():
    first = {m.idempotency_key for m in make()}
    reminder = {m.idempotency_key for m in make(reminder=True)}
    assert len(first) == len(reminder) == 2 and not first & reminder
    assert {m.idempotency_key for m in make(share_id=8)}.isdisjoint(first)


@pytest.mark.parametrize(("email", "mobile", "channels"), [(EMAIL, "", ["email"]), ("", MOBILE, ["sms"]),
                                                          ("", "", [])])
def test_only_the_channels_given(email, mobile, channels):
    assert [m.channel for m in make(email=email, mobile=mobile)] == channels


def test_the_recipients_address_and_number_are_not_in_the_messages():
    for message in make("en") + make("zu", reminder=True):
        for part in (message.subject, message.text, message.html):
            assert "mokoena" not in part.lower() and "821234567" not in part

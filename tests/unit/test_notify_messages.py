"""The messages as rendered: what they say, what they must never say, and their idempotency keys."""

from __future__ import annotations

import re
from email.message import EmailMessage

import pytest

from plugin.notify.messages import NewMessage, StudyNotice, study_ready_messages, welcome_messages

PUBLIC_URL = "https://pacs.example.co.za"
# What the store knows about the patient, none of which may appear in a message.
PATIENT_NAME, PATIENT_ID = "Dlamini^Thandiwe", "8001015009087"
STUDY = StudyNotice(study_uid="1.2.840.99.1", orthanc_study_id="a1b2c3", study_date="20240131",
                    modalities=("CT", "SR"), description="CT abdomen & pelvis", accession_number="ACC-4711")


def ready(study: StudyNotice = STUDY, practice: str = "Sandton Radiology") -> list[NewMessage]:
    return study_ready_messages(7, "dr.naidoo@example.com", "+27821234567", study, PUBLIC_URL, practice)


def by_channel(messages: list[NewMessage]) -> dict[str, NewMessage]:
    return {message.channel: message for message in messages}


def test_one_email_and_one_sms_with_keys_per_study_doctor_and_channel() -> None:
    messages = by_channel(ready())
    assert messages["email"].idempotency_key == "study-ready:1.2.840.99.1:7:email"
    assert messages["sms"].idempotency_key == "study-ready:1.2.840.99.1:7:sms"
    assert messages["email"].recipient == "dr.naidoo@example.com"
    assert messages["sms"].recipient == "+27821234567"
    assert {(m.kind, m.study_uid, m.doctor_id) for m in messages.values()} == {("study_ready", "1.2.840.99.1", 7)}


@pytest.mark.parametrize(("email", "mobile", "channels"), [
    ("dr@example.com", "", ["email"]), ("", "+27821234567", ["sms"]), ("", "", []),
])
def test_only_the_channels_the_doctor_has(email: str, mobile: str, channels: list[str]) -> None:
    messages = study_ready_messages(7, email, mobile, STUDY, PUBLIC_URL, "X")
    assert [message.channel for message in messages] == channels


def test_the_email_gives_the_study_details_and_the_link() -> None:
    email = by_channel(ready())["email"]
    for part in (email.text, email.html):
        assert "2024-01-31" in part
        assert "CT, SR" in part
        assert "ACC-4711" in part
        assert f"{PUBLIC_URL}/gate/doctor" in part
    assert "CT abdomen & pelvis" in email.text
    assert "CT abdomen &amp; pelvis" in email.html
    assert email.subject == "Sandton Radiology: a new study is ready for you"


def test_the_email_names_no_patient() -> None:
    email = by_channel(ready())["email"]
    for part in (email.subject, email.text, email.html):
        assert "Dlamini" not in part and "Thandiwe" not in part and PATIENT_ID not in part


def test_the_email_html_is_self_contained() -> None:
    html = by_channel(ready())["email"].html
    assert "<img" not in html and "<link" not in html and "<script" not in html
    assert re.findall(r'href="([^"]+)"', html) == [f"{PUBLIC_URL}/gate/doctor"]


def test_a_hostile_description_is_escaped_in_the_html() -> None:
    hostile = StudyNotice("1.2.3", "x", "20240131", ("CT",), '<script>alert("x")</script><a href="https://evil">',
                          '"><img src=x onerror=alert(1)>')
    html = by_channel(ready(hostile))["email"].html
    assert "<script>" not in html and "<img" not in html and '<a href="https://evil"' not in html
    assert re.findall(r'href="([^"]+)"', html) == [f"{PUBLIC_URL}/gate/doctor"]
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_hostile_practice_name_is_escaped_too() -> None:
    html = by_channel(ready(practice="<b>Evil</b> & Co"))["email"].html
    assert "<b>" not in html and "&lt;b&gt;Evil&lt;/b&gt; &amp; Co" in html


def test_missing_details_say_so() -> None:
    bare = StudyNotice("1.2.3", "x", "", (), "", "")
    text = by_channel(ready(bare))["email"].text
    assert text.count("not given") == 4


def test_the_email_is_a_valid_message_body() -> None:
    email = by_channel(ready())["email"]
    built = EmailMessage()
    built["Subject"] = email.subject  # a header: no line breaks allowed
    built.set_content(email.text)
    built.add_alternative(email.html, subtype="html")
    assert built.get_content_type() == "multipart/alternative"


def test_the_sms_says_only_that_a_study_is_ready_and_where() -> None:
    sms = by_channel(ready())["sms"]
    assert sms.text == f"Sandton Radiology: a new study is ready for you. Open {PUBLIC_URL}/gate/doctor"
    assert sms.subject == "" and sms.html == ""


def test_the_sms_holds_no_patient_identifying_data() -> None:
    sms = by_channel(ready())["sms"]
    for secret in ("Dlamini", "Thandiwe", PATIENT_ID, "ACC-4711", "1.2.840.99.1", "a1b2c3", "abdomen", "20240131",
                   "2024-01-31"):
        assert secret not in sms.text


def test_the_sms_is_plain_ascii_in_one_part() -> None:
    sms = by_channel(ready(practice="Tshwane Radiologie – Ümlauts {Café} `x`"))["sms"]
    assert sms.text.isascii()
    assert not set(sms.text) & set("`[]\\^{|}~")  # outside the GSM basic alphabet
    assert sms.text.startswith("Tshwane Radiologie - Umlauts Cafe x: a new study")
    assert len(sms.text) < 160


def test_a_long_practice_name_keeps_the_sms_in_one_part() -> None:
    sms = by_channel(ready(practice="A" * 300))["sms"]
    assert len(sms.text) < 160


def test_the_welcome_email_with_a_set_password_link() -> None:
    [welcome] = welcome_messages(7, "Dr.Naidoo@Example.com", "Dr P Naidoo", f"{PUBLIC_URL}/gate/set-password/tok",
                                 PUBLIC_URL, "Sandton Radiology", username="pnaidoo", link_hours=72)
    assert (welcome.channel, welcome.kind, welcome.doctor_id, welcome.study_uid) == ("email", "welcome", 7, None)
    assert f"{PUBLIC_URL}/gate/set-password/tok" in welcome.text and "72 hours" in welcome.text
    assert f"{PUBLIC_URL}/gate/set-password/tok" in welcome.html and "pnaidoo" in welcome.html
    assert "Dr P Naidoo" in welcome.html


def test_the_welcome_key_is_per_doctor_and_address_and_does_not_show_the_address() -> None:
    def key(doctor_id: int, email: str) -> str:
        return welcome_messages(doctor_id, email, "Dr", None, PUBLIC_URL, "X")[0].idempotency_key

    assert key(7, "dr@example.com") == key(7, " DR@example.com ")
    assert key(7, "dr@example.com") != key(7, "other@example.com")
    assert key(7, "dr@example.com") != key(8, "dr@example.com")
    assert key(7, "dr@example.com").startswith("welcome:7:") and "example" not in key(7, "dr@example.com")


def test_a_doctor_welcomed_without_a_login_is_welcomed_again_when_given_one() -> None:
    def key(username: str | None) -> str:
        return welcome_messages(7, "dr@example.com", "Dr", None, PUBLIC_URL, "X", username=username)[0].idempotency_key

    assert key(None) != key("drnaidoo") != key("drnaidoo2")
    assert key("drnaidoo") == key("drnaidoo") and "drnaidoo" not in key("drnaidoo")


def test_the_welcome_email_of_a_directory_account_has_no_password_link() -> None:
    [welcome] = welcome_messages(7, "dr@example.com", "<i>Dr</i>", None, PUBLIC_URL, "X")
    assert "password" not in welcome.text.lower()
    assert "&lt;i&gt;Dr&lt;/i&gt;" in welcome.html


def test_no_welcome_without_an_address() -> None:
    assert welcome_messages(7, "", "Dr", None, PUBLIC_URL, "X") == []

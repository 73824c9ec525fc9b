"""Messages on a real Orthanc: a real SMTP server (aiosmtpd) and a local HTTP sink in Clickatell's
shape receive the "study ready" e-mail and SMS of a linked study once it is stable, exactly once; a
new doctor's welcome e-mail carries a single-use link to set a password; and with ten SMS queued and
the gateway down, a restart of Orthanc loses none and sends none twice once the gateway is back."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from tests.conftest import Server, start_gate
from tests.integration.grants_support import PASSWORD, Caller, push_study, register_doctors
from tests.integration.message_sinks import Mailbox
from tests.referral_studies import Referral

pytestmark = pytest.mark.integration

API_KEY = "clickatell-test-key"
ZOE = {"hpcsa_number": "MP0300001", "title": "Prof", "first_name": "Zoë", "last_name": "Müller",
       "username": "drzoe", "email": "zoe.muller@clinic.example", "mobile": "082 555 1234"}
TEXTER = {"hpcsa_number": "MP0300002", "first_name": "Sipho", "last_name": "Ndlovu", "mobile": "+27 83 555 0000"}
PATIENT_NAME, PATIENT_ID = "DLAMINI^THABO", "8001015009087"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, mailbox, sms):
    workdir = tmp_path_factory.mktemp("notifications")
    (workdir / "clickatell.key").write_text(API_KEY + "\n")
    gate = {"PublicUrl": "https://pacs.example.co.za", "PracticeName": "Sandton Radiology",
            "Smtp": {"Host": "127.0.0.1", "Port": mailbox[1], "Security": "none", "From": "pacs@example.co.za"},
            "Sms": {"Gateway": "clickatell", "Url": f"http://127.0.0.1:{sms.port}/messages",
                    "ApiKeyFile": str(workdir / "clickatell.key")},
            "Outbox": {"RetryBaseSeconds": 0.2, "RetryMaxSeconds": 1, "PollSeconds": 0.2, "MaxAttempts": 1000}}
    server = start_gate(workdir, gate=gate, extra={"StableAge": 1})
    try:
        server.proc.gatectl_many([(["create-user", "drzoe", "--role", "referring_doctor", "--password-stdin",
                                    "--no-password-change"],
                                   PASSWORD + "\n"),
                                  (["create-user", "drnew", "--role", "referring_doctor"], None)])
        yield server
    finally:
        server.proc.stop()


@pytest.fixture(scope="module")
def doctors(srv: Server) -> dict[str, int]:
    return register_doctors(srv, {"zoe": ZOE, "texter": TEXTER})


push = push_study


def ready_mails(box: Mailbox) -> list:
    return [m for m in box.messages if "a new study is ready" in m["Subject"]]


def test_a_stable_linked_study_is_mailed_and_texted_once(srv, doctors, mailbox, sms, tmp_path):
    box = mailbox[0]
    before_mails, before_sms = len(ready_mails(box)), len(sms.received)
    study_uid = push(srv, tmp_path, Referral(PATIENT_ID, patient_name=PATIENT_NAME, birth_date="19800101", sex="M",
                                             referring="MULLER^ZOE", accession="ACC-77"))
    deadline = time.monotonic() + 30
    while (len(ready_mails(box)) <= before_mails or len(sms.received) <= before_sms) and time.monotonic() < deadline:
        time.sleep(0.1)
    [mail] = ready_mails(box)[before_mails:]
    assert mail["To"] == ZOE["email"] and mail["From"] == "pacs@example.co.za" and mail["Message-ID"]
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "https://pacs.example.co.za/gate/doctor" in text and "https://pacs.example.co.za/gate/doctor" in html
    assert "ACC-77" in text and "2026-12-04" in text
    for body in (text, html):
        assert "DLAMINI" not in body.upper() and PATIENT_ID not in body
    [texted] = sms.received[before_sms:]
    assert texted["path"] == "/messages" and texted["headers"]["Authorization"] == API_KEY
    assert texted["body"]["to"] == ["27825551234"]
    content = texted["body"]["content"]
    assert "Sandton Radiology" in content and "https://pacs.example.co.za/gate/doctor" in content
    for secret in ("DLAMINI", "THABO", PATIENT_ID, "ACC-77"):
        assert secret not in content.upper()
    # Stable once: nothing more comes for this study, even after another stable period.
    time.sleep(1.5)
    assert len(ready_mails(box)) == before_mails + 1 and len(sms.received) == before_sms + 1
    sent = srv.admin("GET", "/gate/api/outbox?status=sent").json()["messages"]
    assert sorted(m["channel"] for m in sent if m["study_uid"] == study_uid) == ["email", "sms"]
    assert all("zoe.muller@clinic.example" not in json.dumps(m) for m in sent)  # masked for admins too


def test_a_study_held_for_review_sends_nothing(srv, doctors, mailbox, sms, tmp_path):
    before = (len(ready_mails(mailbox[0])), len(sms.received))
    push(srv, tmp_path, Referral("NOBODY-1", referring="NOBODY^SOMEONE"))
    time.sleep(2)  # past StableAge and several outbox rounds
    assert (len(ready_mails(mailbox[0])), len(sms.received)) == before


def test_a_new_doctors_welcome_carries_a_single_use_password_link(srv, doctors, mailbox):
    box = mailbox[0]
    answer = srv.admin("POST", "/gate/api/doctors", json={
        "hpcsa_number": "MP0300003", "first_name": "Lindiwe", "last_name": "Zulu", "username": "drnew",
        "email": "lindiwe@clinic.example"})
    assert answer.status_code == 201, answer.text
    deadline = time.monotonic() + 20
    while not [m for m in box.messages if m["To"] == "lindiwe@clinic.example"] and time.monotonic() < deadline:
        time.sleep(0.05)
    [welcome] = [m for m in box.messages if m["To"] == "lindiwe@clinic.example"]
    link = re.search(r"https://pacs\.example\.co\.za(/gate/set-password/[A-Za-z0-9_-]+)",
                     welcome.get_body(preferencelist=("plain",)).get_content()).group(1)
    page = requests.get(srv.url(link), timeout=10)
    assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
    new_password = "a brand new long password"
    origin = {"Origin": srv.proc.base}
    chosen = requests.post(srv.url(link), data={"new": new_password, "confirm": new_password},
                           headers=origin, timeout=10)
    assert chosen.status_code == 200, chosen.text[:300]
    assert Caller(srv, "drnew", new_password)("GET", "/gate/api/me").status_code == 200
    again = requests.post(srv.url(link), data={"new": "another long password!", "confirm":
                                               "another long password!"}, headers=origin, timeout=10)
    assert again.status_code == 410
    # Zoe's account has a password: her welcome has no link.
    [zoe] = [m for m in box.messages if m["To"] == ZOE["email"] and "account" in m["Subject"]]
    assert "/gate/set-password/" not in zoe.get_body(preferencelist=("plain",)).get_content()


def test_ten_messages_queued_while_the_gateway_is_down_survive_a_restart_and_arrive_once(
        srv, doctors, sms, tmp_path):
    sms.stop()
    before = len(sms.received)
    studies = [push(srv, tmp_path, Referral(f"TEXT-{n}", referring="Ndlovu^Sipho")) for n in range(10)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        waiting = [m for m in srv.admin("GET", "/gate/api/outbox?status=pending&limit=1000").json()["messages"]
                   if m["study_uid"] in studies and m["attempts"] >= 1]
        if len(waiting) == 10:
            break
        time.sleep(0.2)
    assert len(waiting) == 10, waiting
    assert all(m["last_error"] for m in waiting)  # each tried and failed at least once
    srv.proc.stop()
    srv.proc.start()
    sms.start()
    arrived = sms.wait(before + 10, seconds=30)[before:]
    time.sleep(1)  # several more outbox rounds: nothing may come twice
    assert len(sms.received) - before == 10
    assert all(m["body"]["to"] == ["27835550000"] for m in arrived)
    sent = [m for m in srv.admin("GET", "/gate/api/outbox?status=sent&limit=1000").json()["messages"]
            if m["study_uid"] in studies]
    assert len(sent) == 10

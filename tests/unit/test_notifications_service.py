"""Notifications: what a new doctor's welcome and a study's "study ready" put in the outbox, and when
a welcome may carry a set-password link (only a local, non-admin account without a password yet)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from plugin.config import load_gate_config
from plugin.notify.cipher import contact_cipher
from plugin.policies.referrals import PatientTags, ReferralTags
from plugin.services.notifications import Notifications
from plugin.services.referrals import Arrival
from plugin.store.models import Doctor, OutboxMessage, PasswordToken
from tests.unit.accounts_support import add_user
from tests.unit.conftest import T0

KEY = Fernet.generate_key()


@pytest.fixture
def notifications(tmp_path: Path) -> Notifications:
    config = load_gate_config({"Gate": {"PublicUrl": "https://pacs.example.co.za/", "PracticeName": "Sandton"}},
                              tmp_path)
    return Notifications(config, contact_cipher(KEY))


def _doctor(db, username: str | None, email: str = "dr@clinic.example", mobile: str = "") -> Doctor:
    number = len(db.execute(select(Doctor)).all()) + 1
    doctor = Doctor(hpcsa_number=f"MP{number:07d}", title="Dr", first_name="Anele",
                    last_name="Nkosi", email=email, mobile=mobile, practice="", aliases="[]", username=username,
                    disabled=False, hpcsa_active=True, created_at=T0, updated_at=T0)
    db.add(doctor)
    db.flush()
    return doctor


def _payloads(store) -> list[dict]:
    cipher = contact_cipher(KEY)
    with store.read() as db:
        return [{"key": row.idempotency_key, **json.loads(cipher.decrypt(row.payload.encode()))}
                for row in db.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars()]


@pytest.mark.parametrize(("roles", "password", "must_change", "linked"), [
    (["referring_doctor"], None, False, True),
    (["referring_doctor"], "an old long password", True, True),
    (["referring_doctor"], "an old long password", False, False),
    (["admin"], None, False, False),
])
def test_a_welcome_links_only_to_a_local_non_admin_account_without_a_password(
        store, notifications, cheap_argon2, roles, password, must_change, linked):
    add_user(store, T0, "drnkosi", roles, password, must_change_password=must_change)
    with store.transaction() as db:
        assert notifications.welcome(db, _doctor(db, "drnkosi"), T0) == 1
    [welcome] = _payloads(store)
    assert ("https://pacs.example.co.za/gate/set-password/" in welcome["text"]) is linked
    with store.read() as db:
        assert (db.execute(select(PasswordToken)).first() is not None) is linked


def test_no_address_no_welcome_and_a_doctor_is_welcomed_once(store, notifications):
    with store.transaction() as db:
        assert notifications.welcome(db, _doctor(db, None, email=""), T0) == 0
        doctor = _doctor(db, None)
        assert notifications.welcome(db, doctor, T0) == 1
        assert notifications.welcome(db, doctor, T0) == 0
    assert "/gate/set-password/" not in _payloads(store)[0]["text"]


def test_study_ready_goes_by_each_channel_the_doctor_has_once(store, notifications):
    arrival = Arrival("oid-1", "1.2.3", "pid-oid", PatientTags("P-1", "DOE^JANE", "19800101", "F"),
                      ReferralTags(("NKOSI^A",), (), (), (), "ACC-1"), "CT\\PT", "20261204", "CT CHEST")
    with store.transaction() as db:
        doctor = _doctor(db, None, mobile="+27825551234")
        assert notifications.study_ready(db, doctor, arrival, T0) == 2
        assert notifications.study_ready(db, doctor, arrival, T0) == 0
    email, sms = _payloads(store)
    assert email["key"].endswith(":email") and "ACC-1" in email["text"] and "CT, PT" in email["text"]
    assert sms["key"].endswith(":sms") and "DOE" not in sms["text"] and "P-1" not in sms["text"]

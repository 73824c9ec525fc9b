"""services/shares.py, the practice's side of patient share links, with a real store and a fake Orthanc:
who may share which studies (admins; `share` holders on every study), what the store keeps (hashes,
argon2id, encrypted contacts), list/get/revoke, the messages queued, and the audit."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from plugin.audit.log import append_now
from plugin.audit.record import AuditRecord, iso_utc
from plugin.config import load_gate_config
from plugin.errors import BadRequest, Forbidden, GateError, NotFound, StoreUnavailable
from plugin.identity.secrets import verify_password
from plugin.notify.cipher import contact_cipher
from plugin.policies.types import Principal
from plugin.services.access import AccessService, ResourceLocator
from plugin.services.shares import ShareService, share_actor
from plugin.store import grants as grant_store
from plugin.store.models import Grant, OutboxMessage, Share, ShareStudy, ShareTicket
from tests.unit.conftest import T0
from tests.unit.fake_core import FakeCore

PUBLIC_URL = "https://pacs.example.co.za"
PRACTICE = "Umhlanga Radiology"
ADMIN = Principal("root1", frozenset({"admin"}), "session")
DOCTOR = Principal("drnkosi", frozenset({"referring_doctor"}), "session")
OTHER = Principal("drdlamini", frozenset({"referring_doctor"}), "session")
EMAIL = "thandi.mokoena@example.co.za"
MOBILE = "+27821234567"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _cheap(cheap_argon2) -> None:
    """Every test here may hash a share's password: with argon2id's cost kept tiny."""


class Setup:
    def __init__(self, store, clock, tmp_path: Path, **shares) -> None:
        self.store, self.clock = store, clock
        self.core = FakeCore()
        self.a = self.core.add_study("PAT-1", "1.2.3.1")
        self.b = self.core.add_study("PAT-1", "1.2.3.2", modality="MR")
        self.c = self.core.add_study("PAT-2", "2.1")
        self.access = AccessService(store, ResourceLocator(self.core), clock=clock)
        self.config = load_gate_config({"Gate": {"PublicUrl": PUBLIC_URL + "/", "PracticeName": PRACTICE,
                                                 "Shares": shares}}, tmp_path)
        self.cipher = contact_cipher(Fernet.generate_key())
        self.audited: list[AuditRecord] = []
        self.audit_ok = True
        self.woken = 0
        self.service = ShareService(store, self.access, self.config, self.cipher, self._audit, self._wake)

    def _audit(self, record: AuditRecord) -> bool:
        if self.audit_ok:
            self.audited.append(record)
        return self.audit_ok

    def _wake(self) -> None:
        self.woken += 1

    def grant(self, username: str, level: str, study=None, patient_id: str | None = None, **extra) -> None:
        row = Grant(subject_user=username, patient_id=patient_id, study_uid=study.study_uid if study else None,
                    orthanc_id=study.study if study else None, level=level, source="manual", created_at=T0,
                    created_by="root1", **extra)
        with self.store.transaction() as db:
            grant_store.add_grants(db, [row])
        self.access.invalidate()

    def create(self, principal: Principal = ADMIN, **data):
        data.setdefault("studies", [self.a.study_uid])
        return self.service.create(principal, data, self.clock(), "10.0.0.7")

    def share_row(self, share_id: int) -> Share:
        with self.store.read() as db:
            return db.get(Share, share_id)

    def outbox(self) -> list[OutboxMessage]:
        with self.store.read() as db:
            return list(db.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())

    def decrypt(self, token: str) -> str:
        return self.cipher.decrypt(token.encode()).decode()


@pytest.fixture
def env(store, clock, tmp_path) -> Setup:
    return Setup(store, clock, tmp_path)


def columns(row) -> dict[str, object]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


# -- create ----------------------------------------------------------------------------------------

def test_an_admin_creates_a_share_and_sees_its_token_and_link_once(env):
    created = env.create(studies=[env.a.study_uid, env.b.study], consent={"method": "verbal"})
    token = created["token"]
    assert len(token) == 43
    assert created["url"] == f"{PUBLIC_URL}/share/{token}"
    assert created["state"] == "active"
    assert created["patient_id"] == "PAT-1"
    assert created["studies"] == [{"study_uid": "1.2.3.1", "orthanc_id": env.a.study},
                                  {"study_uid": "1.2.3.2", "orthanc_id": env.b.study}]
    assert created["created_by"] == "root1"
    assert created["created_at"] == iso_utc(T0)
    assert created["expires_at"] == iso_utc(T0 + 168 * 3600)
    assert (created["password"], created["max_downloads"], created["downloads"], created["opens"]) == (
        False, None, 0, 0)
    assert created["consent"]["recorded_by"] == "root1" and created["consent"]["method"] == "verbal"
    assert created["queued_messages"] == 0 and env.woken == 0
    assert (created["revoked_at"], created["revoked_by"]) == (None, None)


def test_the_store_keeps_only_the_tokens_sha256_and_an_argon2id_password_hash(env):
    created = env.create(password=PASSWORD)
    row = env.share_row(created["id"])
    token = created["token"]
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.password_hash.startswith("$argon2id$")
    assert verify_password(row.password_hash, PASSWORD)
    stored = json.dumps(columns(row), default=str)
    assert token not in stored and PASSWORD not in stored
    assert created["password"] is True


def test_the_recipient_is_stored_encrypted_and_shown_masked(env):
    created = env.create(recipient={"email": " Thandi.Mokoena@Example.CO.ZA", "mobile": "082 123 4567"},
                         notify=False)
    row = env.share_row(created["id"])
    assert "example.co.za" not in row.recipient_email and "821234567" not in row.recipient_mobile
    assert env.decrypt(row.recipient_email) == "Thandi.Mokoena@example.co.za"
    assert env.decrypt(row.recipient_mobile) == MOBILE
    assert created["recipient"] == {"email": "T***@example.co.za", "mobile": "+2782***4567"}


def test_no_recipient_stores_nothing_to_decrypt(env):
    created = env.create()
    row = env.share_row(created["id"])
    assert (row.recipient_email, row.recipient_mobile) == (None, None)
    assert created["recipient"] == {"email": None, "mobile": None}


def test_a_study_is_named_by_its_uid_or_its_orthanc_id(env):
    by_uid = env.create(studies=[env.a.study_uid])
    by_oid = env.create(studies=[env.a.study])
    assert by_uid["studies"] == by_oid["studies"] == [{"study_uid": "1.2.3.1", "orthanc_id": env.a.study}]


def test_one_study_named_both_ways_is_shared_once(env):
    created = env.create(studies=[env.a.study_uid, env.a.study])
    assert created["studies"] == [{"study_uid": "1.2.3.1", "orthanc_id": env.a.study}]


def test_a_holder_of_share_on_every_study_may_share_them(env):
    env.grant("drnkosi", "share", env.a)
    env.grant("drnkosi", "full", env.b)
    created = env.create(DOCTOR, studies=[env.a.study_uid, env.b.study_uid], consent={"method": "written"})
    assert created["created_by"] == "drnkosi"
    assert created["consent"]["recorded_by"] == "drnkosi"


def test_a_share_grant_on_the_patient_covers_their_studies(env):
    env.grant("drnkosi", "share", patient_id="PAT-1")
    assert env.create(DOCTOR, studies=[env.a.study, env.b.study_uid])["patient_id"] == "PAT-1"


@pytest.mark.parametrize("level", ["view_only", "download", "annotate", "report"])
def test_a_lower_level_on_one_of_the_studies_is_forbidden(env, level):
    env.grant("drnkosi", "share", env.a)
    env.grant("drnkosi", level, env.b)
    with pytest.raises(Forbidden) as caught:
        env.create(DOCTOR, studies=[env.a.study_uid, env.b.study_uid])
    assert caught.value.status == 403
    assert env.service.list(ADMIN, {}, T0)["total"] == 0


def test_no_grant_at_all_is_not_found_alike_an_unknown_study(env):
    env.grant("drnkosi", "share", env.a)
    with pytest.raises(NotFound) as caught:
        env.create(DOCTOR, studies=[env.a.study_uid, env.b.study_uid])
    assert caught.value.status == 404


@pytest.mark.parametrize("extra", [{"revoked_at": T0 - 1, "revoked_by": "root1"}, {"expires_at": T0 - 1}],
                         ids=["revoked", "expired"])
def test_a_grant_that_no_longer_holds_is_none(env, extra):
    env.grant("drnkosi", "share", env.a, **extra)
    with pytest.raises(NotFound):
        env.create(DOCTOR)


@pytest.mark.parametrize("ref", ["9.9.9", "0a1b2c3d-4e5f6a7b-8c9d0e1f-2a3b4c5d-6e7f8a9b"])
def test_an_unknown_study_is_not_found(env, ref):
    with pytest.raises(NotFound):
        env.create(studies=[env.a.study_uid, ref])


def test_studies_of_two_patients_are_refused(env):
    with pytest.raises(BadRequest, match="one patient"):
        env.create(studies=[env.a.study_uid, env.c.study_uid])


@pytest.mark.parametrize(("data", "field"), [({"studies": []}, "studies"), ({"valid_hours": 0}, "valid_hours"),
                                             ({"password": "12345"}, "password"), ({"colour": "x"}, "colour"),
                                             ({"notify": True}, "notify")])
def test_a_bad_request_names_the_field_and_writes_nothing(env, data, field):
    with pytest.raises(BadRequest, match=field):
        env.create(**data)
    assert env.service.list(ADMIN, {}, T0)["total"] == 0 and env.audited == []


def test_shares_turned_off_are_forbidden(store, clock, tmp_path):
    env = Setup(store, clock, tmp_path, Enabled=False)
    with pytest.raises(Forbidden, match="Shares.Enabled"):
        env.create()


def test_a_password_the_argon2_library_cannot_encode_is_a_bad_request_not_a_crash(env):
    """JSON may carry a lone surrogate ("\\ud800"), which read_share_request accepts as a password."""
    with pytest.raises(BadRequest):
        env.create(password="\ud800secret")


# -- the audit -------------------------------------------------------------------------------------

def test_create_is_audited_with_the_patient_and_the_studies_and_no_secret(env):
    created = env.create(studies=[env.a.study_uid, env.b.study_uid], password=PASSWORD,
                         recipient={"email": EMAIL, "mobile": MOBILE})
    [record] = env.audited
    assert (record.actor, record.action, record.outcome, record.source_ip) == ("root1", "share.create", "success",
                                                                             "10.0.0.7")
    assert record.patient_id == "PAT-1"
    assert record.study_uid == "1.2.3.1,1.2.3.2"
    assert record.reason == f"share {created['id']}"
    detail = json.loads(record.detail)
    assert detail["share"] == created["id"] and detail["studies"] == ["1.2.3.1", "1.2.3.2"]
    assert detail["password"] is True and detail["queued"] == 2
    written = json.dumps(dataclasses.asdict(record))
    for secret in (created["token"], PASSWORD, EMAIL, MOBILE, "821234567"):
        assert secret not in written


def test_no_answer_without_the_audit(env):
    env.audit_ok = False
    with pytest.raises(StoreUnavailable):
        env.create()


def test_a_share_whose_creation_was_not_audited_is_withdrawn_and_sends_nothing(env):
    env.audit_ok = False
    with pytest.raises(StoreUnavailable):
        env.create(recipient={"email": EMAIL, "mobile": "0821234567"})
    with env.store.read() as db:
        (row,) = db.execute(select(Share)).scalars().all()
    assert row.revoked_at is not None
    assert {m.status for m in env.outbox()} == {"cancelled"} and len(env.outbox()) == 2


# -- messages --------------------------------------------------------------------------------------

def test_notify_queues_an_email_and_an_sms_keyed_by_the_share(env):
    created = env.create(recipient={"email": EMAIL, "mobile": "0821234567"}, language="af")
    messages = env.outbox()
    share_id = created["id"]
    assert [(m.idempotency_key, m.channel, m.kind, m.status) for m in messages] == [
        (f"share:{share_id}:email", "email", "share", "pending"), (f"share:{share_id}:sms", "sms", "share", "pending")]
    assert all(m.next_attempt_at == T0 for m in messages)
    assert [env.decrypt(m.recipient) for m in messages] == [EMAIL, MOBILE]
    for message in messages:
        assert EMAIL not in message.recipient and created["token"] not in message.payload
        assert created["url"] in env.decrypt(message.payload)
    assert "beelde" in json.loads(env.decrypt(messages[1].payload))["text"]  # in the share's language
    assert created["queued_messages"] == 2 and env.woken == 1


def test_notify_false_queues_nothing(env):
    created = env.create(recipient={"email": EMAIL}, notify=False)
    assert env.outbox() == [] and created["queued_messages"] == 0 and env.woken == 0


def test_the_password_never_travels_with_the_link(env):
    env.create(recipient={"email": EMAIL, "mobile": MOBILE}, password=PASSWORD)
    for message in env.outbox():
        assert PASSWORD not in env.decrypt(message.payload)


def test_a_reminder_is_scheduled_so_many_hours_before_expiry(store, clock, tmp_path):
    env = Setup(store, clock, tmp_path, ReminderHours=24)
    created = env.create(recipient={"email": EMAIL, "mobile": MOBILE}, valid_hours=72)
    share_id = created["id"]
    keys = {m.idempotency_key: m for m in env.outbox()}
    assert set(keys) == {f"share:{share_id}:email", f"share:{share_id}:sms", f"share-reminder:{share_id}:email",
                         f"share-reminder:{share_id}:sms"}
    assert keys[f"share:{share_id}:email"].next_attempt_at == T0
    assert keys[f"share-reminder:{share_id}:email"].next_attempt_at == T0 + 48 * 3600
    assert keys[f"share-reminder:{share_id}:sms"].next_attempt_at == T0 + 48 * 3600
    assert keys[f"share-reminder:{share_id}:sms"].kind == "share_reminder"
    assert created["queued_messages"] == 4


def test_no_reminder_for_a_share_shorter_than_the_reminder(store, clock, tmp_path):
    env = Setup(store, clock, tmp_path, ReminderHours=24)
    created = env.create(recipient={"email": EMAIL}, valid_hours=12)
    assert [m.idempotency_key for m in env.outbox()] == [f"share:{created['id']}:email"]


# -- list and get ----------------------------------------------------------------------------------

def test_an_admin_lists_every_share_and_a_creator_only_theirs(env):
    env.grant("drnkosi", "share", env.a)
    env.grant("drdlamini", "share", env.b)
    mine = env.create(DOCTOR)
    theirs = env.create(OTHER, studies=[env.b.study_uid])
    admins = env.create(ADMIN, studies=[env.c.study])
    listed = env.service.list(ADMIN, {}, T0)
    assert [s["id"] for s in listed["shares"]] == [admins["id"], theirs["id"], mine["id"]]  # newest first
    assert (listed["total"], listed["offset"]) == (3, 0)
    assert [s["id"] for s in env.service.list(DOCTOR, {}, T0)["shares"]] == [mine["id"]]
    assert env.service.list(DOCTOR, {}, T0)["total"] == 1
    paged = env.service.list(ADMIN, {"offset": "1", "limit": "1"}, T0)
    assert ([s["id"] for s in paged["shares"]], paged["total"], paged["limit"]) == ([theirs["id"]], 3, 1)
    assert all("token" not in s and "url" not in s for s in listed["shares"])


@pytest.mark.parametrize("query", [{"limit": "0"}, {"offset": "-1"}])
def test_a_bad_page_is_a_bad_request(env, query):
    with pytest.raises(GateError) as caught:
        env.service.list(ADMIN, query, T0)
    assert caught.value.status == 400


def test_the_listed_state_follows_the_clock(env):
    created = env.create(valid_hours=1)
    assert env.service.list(ADMIN, {}, T0 + 3600)["shares"][0]["state"] == "expired"
    assert env.service.get(ADMIN, created["id"], T0 + 10)["state"] == "active"


def test_get_by_another_user_is_not_found_and_by_an_admin_or_the_creator_found(env):
    env.grant("drnkosi", "share", env.a)
    created = env.create(DOCTOR)
    with pytest.raises(NotFound):
        env.service.get(OTHER, created["id"], T0)
    with pytest.raises(NotFound):
        env.service.get(ADMIN, created["id"] + 100, T0)
    assert env.service.get(DOCTOR, created["id"], T0)["id"] == created["id"]
    assert env.service.get(ADMIN, created["id"], T0)["created_by"] == "drnkosi"


def test_get_lists_the_patients_use_of_the_share_from_the_audit(env, store):
    first = env.create()
    second = env.create()
    for n, (actor, action, outcome) in enumerate([(share_actor(first["id"]), "share.open", "success"),
                                                  (share_actor(second["id"]), "share.open", "success"),
                                                  (share_actor(first["id"]), "share.password", "failure"),
                                                  ("root1", "view", "allow"),
                                                  (share_actor(first["id"]), "share.download", "success")]):
        append_now(store, AuditRecord(ts=iso_utc(T0 + n), actor=actor, action=action, outcome=outcome,
                                      reason=f"event {n}", source_ip="10.1.1.1"))
    events = env.service.get(ADMIN, first["id"], T0 + 10)["events"]
    assert [(e["action"], e["outcome"], e["reason"]) for e in events] == [
        ("share.download", "success", "event 4"), ("share.password", "failure", "event 2"),
        ("share.open", "success", "event 0")]
    assert events[0]["at"] == iso_utc(T0 + 4) and events[0]["source_ip"] == "10.1.1.1"
    assert events[0]["count"] == 1


# -- revoke ----------------------------------------------------------------------------------------

def test_revoke_stops_the_share_spends_its_tickets_and_cancels_its_reminder(store, clock, tmp_path):
    """Its open viewing sessions answer 410 from their next request (test_share_visits.py)."""
    env = Setup(store, clock, tmp_path, ReminderHours=24)
    created = env.create(recipient={"email": EMAIL, "mobile": MOBILE})
    other = env.create(recipient={"email": EMAIL}, studies=[env.b.study_uid])
    share_id = created["id"]
    with store.transaction() as db:
        for sid, name in ((share_id, "a"), (other["id"], "b")):
            db.add(ShareTicket(ticket_hash=name * 64, share_id=sid, target="/studies/x/archive", created_at=T0,
                               expires_at=T0 + 60))
    env.audited.clear()
    clock.advance(10)
    view = env.service.revoke(ADMIN, share_id, clock(), "10.0.0.8")
    assert (view["state"], view["revoked_by"], view["revoked_at"]) == ("revoked", "root1", iso_utc(T0 + 10))
    assert env.share_row(share_id).revoked_at == T0 + 10
    with store.read() as db:
        tickets = {t.ticket_hash[0]: t.expires_at for t in db.execute(select(ShareTicket)).scalars()}
    assert tickets == {"a": T0 + 10, "b": T0 + 60}
    status = {m.idempotency_key: m.status for m in env.outbox()}
    assert status[f"share-reminder:{share_id}:email"] == status[f"share-reminder:{share_id}:sms"] == "cancelled"
    assert status[f"share:{share_id}:email"] == status[f"share:{share_id}:sms"] == "pending"
    assert status[f"share-reminder:{other['id']}:email"] == "pending"
    [record] = env.audited
    assert (record.action, record.actor, record.patient_id, record.study_uid, record.source_ip) == (
        "share.revoke", "root1", "PAT-1", "1.2.3.1", "10.0.0.8")
    assert json.loads(record.detail)["share"] == share_id


def test_revoking_twice_answers_the_share_and_audits_once(env, clock):
    created = env.create()
    env.audited.clear()
    env.service.revoke(ADMIN, created["id"], T0 + 5, "10.0.0.8")
    again = env.service.revoke(ADMIN, created["id"], T0 + 50, "10.0.0.8")
    assert (again["state"], again["revoked_at"]) == ("revoked", iso_utc(T0 + 5))
    assert [r.action for r in env.audited] == ["share.revoke"]


def test_a_creator_revokes_their_share_and_nobody_elses(env):
    env.grant("drnkosi", "share", env.a)
    mine = env.create(DOCTOR)
    admins = env.create(ADMIN)
    with pytest.raises(NotFound):
        env.service.revoke(DOCTOR, admins["id"], T0, "10.0.0.8")
    with pytest.raises(NotFound):
        env.service.revoke(OTHER, mine["id"], T0, "10.0.0.8")
    assert env.service.revoke(DOCTOR, mine["id"], T0, "10.0.0.8")["revoked_by"] == "drnkosi"
    assert env.share_row(admins["id"]).revoked_at is None


def test_share_studies_are_stored_in_the_order_given(env, store):
    created = env.create(studies=[env.b.study, env.a.study_uid])
    with store.read() as db:
        rows = db.execute(select(ShareStudy).where(ShareStudy.share_id == created["id"])
                          .order_by(ShareStudy.position)).scalars().all()
    assert [(r.study_uid, r.orthanc_study_id) for r in rows] == [("1.2.3.2", env.b.study), ("1.2.3.1", env.a.study)]

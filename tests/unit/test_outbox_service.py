"""The admin's view of the outbox: masked recipients, paging, and an audited retry."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from plugin.audit.record import AuditRecord
from plugin.config import OutboxSettings
from plugin.errors import BadRequest, Conflict, NotFound
from plugin.notify.cipher import contact_cipher
from plugin.services.outbox import list_outbox, retry_message
from plugin.services.users import Actor
from plugin.store import outbox
from plugin.store.db import Store
from plugin.store.outbox import NewMessage
from tests.unit.conftest import T0

ADMIN = Actor("alice", frozenset({"admin"}), "session", ip="10.0.0.5")
CIPHER = contact_cipher(Fernet.generate_key())


@pytest.fixture
def queued(store: Store) -> Store:
    with store.transaction() as db:
        outbox.enqueue(db, NewMessage("k:1", "email", "study_ready", "doctor@example.com", "s", "t", "h", "1.2.3", 7),
                       CIPHER, T0)
        outbox.enqueue(db, NewMessage("k:2", "sms", "study_ready", "+27821234567", "", "t", "", "1.2.3", 7), CIPHER, T0)
    return store


def give_up(store: Store) -> None:
    with store.transaction() as db:
        [row] = outbox.claim_due(db, T0, 1)
        outbox.mark_failed(db, row, "the SMTP server answered 554", T0, OutboxSettings(max_attempts=1), 0.0)


def test_the_list_shows_masked_recipients_and_no_content(queued: Store) -> None:
    sms, mail = list_outbox(queued, CIPHER)
    assert (mail["recipient"], sms["recipient"]) == ("d***@example.com", "+2782***4567")
    assert mail == {"id": 1, "channel": "email", "kind": "study_ready", "recipient": "d***@example.com",
                    "status": "pending", "attempts": 0, "next_attempt_at": "2023-11-14T22:13:20.000000Z",
                    "last_error": "", "study_uid": "1.2.3", "doctor_id": 7,
                    "created_at": "2023-11-14T22:13:20.000000Z", "sent_at": None}


def test_the_list_by_status_and_page(queued: Store) -> None:
    give_up(queued)
    assert [m["id"] for m in list_outbox(queued, CIPHER, "dead")] == [1]
    assert [m["id"] for m in list_outbox(queued, CIPHER, "", "1", "1")] == [1]
    with pytest.raises(BadRequest):
        list_outbox(queued, CIPHER, "lost")
    with pytest.raises(BadRequest):
        list_outbox(queued, CIPHER, None, "-1")


def test_a_recipient_under_another_key_is_shown_as_unreadable(queued: Store) -> None:
    assert {m["recipient"] for m in list_outbox(queued, contact_cipher(Fernet.generate_key()))} == {
        "(unreadable: ContactKeyFile replaced?)"}


def test_retry_is_audited_with_the_admin(queued: Store) -> None:
    give_up(queued)
    audit: list[AuditRecord] = []
    assert retry_message(queued, audit.append, ADMIN, T0 + 60, 1) == {"id": 1, "retried": True, "status": "pending",
                                                                     "previous_status": "dead"}
    [record] = audit
    assert (record.actor, record.action, record.outcome, record.source_ip) == ("alice", "outbox.retry", "success",
                                                                               "10.0.0.5")
    assert "message 1" in record.reason and "doctor@" not in record.reason
    [mail] = [m for m in list_outbox(queued, CIPHER) if m["id"] == 1]
    assert (mail["status"], mail["attempts"]) == ("pending", 0)


def test_retry_refuses_sent_and_sending_messages_and_unknown_ids(queued: Store) -> None:
    with queued.transaction() as db:
        sending = outbox.claim_due(db, T0, 1)[0]
    audit: list[AuditRecord] = []
    with pytest.raises(Conflict, match="sending"):
        retry_message(queued, audit.append, ADMIN, T0, sending.id)
    with queued.transaction() as db:
        outbox.mark_sent(db, sending, T0)
    with pytest.raises(Conflict, match="sent"):
        retry_message(queued, audit.append, ADMIN, T0, sending.id)
    with pytest.raises(NotFound):
        retry_message(queued, audit.append, ADMIN, T0, 99)
    assert audit == []

"""The outbox's persistence on a real (temp SQLite) store: idempotency, claims, backoff, release, retry."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from plugin.config import OutboxSettings
from plugin.notify.cipher import contact_cipher
from plugin.store import outbox
from plugin.store.db import Store
from plugin.store.models import Doctor, OutboxMessage
from plugin.store.outbox import NewMessage
from tests.unit.conftest import T0, FakeClock, sqlite_url

SETTINGS = OutboxSettings(max_attempts=5, retry_base_seconds=10.0, retry_max_seconds=40.0)


@pytest.fixture
def cipher():
    return contact_cipher(Fernet.generate_key())


def message(n: int = 1, channel: str = "email") -> NewMessage:
    recipient = f"doctor{n}@example.com" if channel == "email" else "+27821234567"
    return NewMessage(f"study-ready:1.2.3.{n}:7:{channel}", channel, "study_ready", recipient, "Study ready",
                      f"text {n}", f"<p>html {n}</p>", f"1.2.3.{n}", 7)


def rows(store: Store) -> list[OutboxMessage]:
    with store.read() as db:
        return list(db.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def queue(store: Store, cipher, count: int, now: float = T0) -> None:
    with store.transaction() as db:
        for n in range(count):
            outbox.enqueue(db, message(n), cipher, now)


def claim(store: Store, now: float, limit: int = 10) -> list[OutboxMessage]:
    with store.transaction() as db:
        return outbox.claim_due(db, now, limit)


def fail(store: Store, row: OutboxMessage, now: float, error: str = "SMTP failure (ConnectionRefusedError)",
         jitter: float = 0.0) -> str:
    with store.transaction() as db:
        return outbox.mark_failed(db, row, error, now, SETTINGS, jitter)


# -- enqueue ---------------------------------------------------------------------------------------


def test_enqueue_writes_a_pending_encrypted_message_due_now(store: Store, cipher) -> None:
    with store.transaction() as db:
        assert outbox.enqueue(db, message(), cipher, T0) is True
    [row] = rows(store)
    assert (row.status, row.attempts, row.next_attempt_at, row.created_at) == ("pending", 0, T0, T0)
    assert (row.channel, row.kind, row.study_uid, row.doctor_id) == ("email", "study_ready", "1.2.3.1", 7)
    assert "doctor1" not in row.recipient and "html" not in row.payload  # encrypted at rest
    assert cipher.decrypt(row.recipient.encode()) == b"doctor1@example.com"


def test_the_same_idempotency_key_is_queued_once(store: Store, cipher) -> None:
    with store.transaction() as db:
        assert outbox.enqueue(db, message(), cipher, T0) is True
    with store.transaction() as db:
        assert outbox.enqueue(db, message(), cipher, T0 + 5) is False
    assert len(rows(store)) == 1


def test_a_duplicate_does_not_undo_the_rest_of_the_callers_transaction(store: Store, cipher) -> None:
    queue(store, cipher, 1)
    with store.transaction() as db:
        db.add(Doctor(hpcsa_number="MP0000001", last_name="Smith", created_at=T0, updated_at=T0))
        assert outbox.enqueue(db, message(0), cipher, T0) is False
        assert outbox.enqueue(db, message(1), cipher, T0) is True
    with store.read() as db:
        assert db.execute(select(Doctor.hpcsa_number)).scalars().all() == ["MP0000001"]
    assert [row.study_uid for row in rows(store)] == ["1.2.3.0", "1.2.3.1"]


def test_enqueue_is_rolled_back_with_its_transaction(store: Store, cipher) -> None:
    with pytest.raises(RuntimeError), store.transaction() as db:
        outbox.enqueue(db, message(), cipher, T0)
        raise RuntimeError("what caused the message failed")
    assert rows(store) == []


def test_an_unknown_channel_is_refused(store: Store, cipher) -> None:
    with pytest.raises(ValueError, match="channel"), store.transaction() as db:
        outbox.enqueue(db, message(channel="fax"), cipher, T0)


# -- claims ----------------------------------------------------------------------------------------


def test_claim_takes_due_pending_messages_once(store: Store, cipher) -> None:
    queue(store, cipher, 3)
    with store.transaction() as db:
        outbox.enqueue(db, message(9), cipher, T0 + 100)  # not due yet
    claimed = claim(store, T0 + 1, limit=2)
    assert [row.study_uid for row in claimed] == ["1.2.3.0", "1.2.3.1"]
    assert all(row.status == "sending" and row.claimed_at == T0 + 1 for row in claimed)
    assert [row.study_uid for row in claim(store, T0 + 1)] == ["1.2.3.2"]
    assert claim(store, T0 + 1) == []


def test_claim_only_takes_the_channels_asked_for(store: Store, cipher) -> None:
    with store.transaction() as db:
        outbox.enqueue(db, message(1, "email"), cipher, T0)
        outbox.enqueue(db, message(2, "sms"), cipher, T0)
    with store.transaction() as db:
        assert [row.channel for row in outbox.claim_due(db, T0, 10, ("sms",))] == ["sms"]


def test_two_workers_claiming_at_once_never_take_the_same_message(db_path: Path, store: Store, cipher) -> None:
    queue(store, cipher, 60)
    # A second handle on the same file, as a second node would have; a lock wait longer than the
    # fixture's 0.2 s so the two really queue up behind each other.
    nodes = [Store(sqlite_url(db_path), timeout_seconds=10), Store(sqlite_url(db_path), timeout_seconds=10)]
    taken: list[list[int]] = [[], []]
    rounds = 10  # each node claims 3 a round: 60 in all
    in_step = threading.Barrier(2, timeout=10)

    def work(node: int) -> None:
        for _ in range(rounds):
            in_step.wait()  # both claim at the same moment, every round
            with nodes[node].transaction() as db:
                taken[node].extend(row.id for row in outbox.claim_due(db, T0, 3))

    threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for node in nodes:
        node.dispose()
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == [row.id for row in rows(store)]
    assert len(taken[0]) == len(taken[1]) == 30  # both did work
    assert {row.status for row in rows(store)} == {"sending"}


# -- outcomes --------------------------------------------------------------------------------------


def test_mark_sent(store: Store, cipher) -> None:
    queue(store, cipher, 1)
    [row] = claim(store, T0)
    with store.transaction() as db:
        outbox.mark_sent(db, row, T0 + 2)
    [row] = rows(store)
    assert (row.status, row.sent_at, row.claimed_at) == ("sent", T0 + 2, None)
    assert claim(store, T0 + 3600) == []


def test_failures_back_off_exponentially_then_the_message_is_dead(store: Store, cipher) -> None:
    clock = FakeClock()
    queue(store, cipher, 1, clock.now)
    waits = []
    for attempt in range(1, SETTINGS.max_attempts + 1):
        [row] = claim(store, clock.now)
        status = fail(store, row, clock.now)
        [stored] = rows(store)
        assert stored.attempts == attempt
        if attempt < SETTINGS.max_attempts:
            assert status == stored.status == "pending"
            waits.append(stored.next_attempt_at - clock.now)
            clock.advance(waits[-1] - 0.5)
            assert claim(store, clock.now) == []  # not due before its time
            clock.advance(0.5)
    assert waits == [10.0, 20.0, 40.0, 40.0]  # doubling, capped at RetryMaxSeconds
    assert status == "dead"
    [row] = rows(store)
    assert row.status == "dead" and row.claimed_at is None
    assert claim(store, clock.advance(10_000)) == []  # a dead message is not tried again by itself


def test_jitter_shortens_the_wait(store: Store, cipher) -> None:
    queue(store, cipher, 1)
    [row] = claim(store, T0)
    fail(store, row, T0, jitter=0.5)
    assert rows(store)[0].next_attempt_at == T0 + 7.5


def test_the_error_kept_is_cut_to_512_characters(store: Store, cipher) -> None:
    queue(store, cipher, 1)
    [row] = claim(store, T0)
    fail(store, row, T0, error="x" * 2000)
    assert rows(store)[0].last_error == "x" * 512


def test_an_outcome_for_a_claim_that_was_replaced_is_ignored(store: Store, cipher) -> None:
    queue(store, cipher, 1)
    [old] = claim(store, T0)
    with store.transaction() as db:
        outbox.release_stale(db, T0 + 100, 40)
    [new] = claim(store, T0 + 100)
    assert fail(store, old, T0 + 101) == "sending"  # the new claim's owner decides
    assert rows(store)[0].attempts == 0
    assert fail(store, new, T0 + 102) == "pending"


# -- release and retry -----------------------------------------------------------------------------


def test_release_stale_returns_messages_a_dead_worker_held(store: Store, cipher) -> None:
    queue(store, cipher, 2)
    claim(store, T0, limit=1)
    with store.transaction() as db:
        assert outbox.release_stale(db, T0 + 40, 40) == 0  # not stale yet
    with store.transaction() as db:
        assert outbox.release_stale(db, T0 + 41, 40) == 1
    assert [(row.status, row.claimed_at, row.attempts) for row in rows(store)] == [("pending", None, 0)] * 2
    assert len(claim(store, T0 + 41)) == 2


def test_unclaim_gives_a_message_back_without_counting_a_try(store: Store, cipher) -> None:
    queue(store, cipher, 1)
    [row] = claim(store, T0)
    with store.transaction() as db:
        outbox.unclaim(db, row)
    assert [(row.status, row.attempts) for row in rows(store)] == [("pending", 0)]


def test_retry_brings_a_dead_message_back_with_its_tries_reset(store: Store, cipher) -> None:
    queue(store, cipher, 1)
    clock = FakeClock()
    for _ in range(SETTINGS.max_attempts):
        [row] = claim(store, clock.advance(100))
        fail(store, row, clock.now)
    assert rows(store)[0].status == "dead"
    with store.transaction() as db:
        assert outbox.retry(db, row.id, clock.advance(5)) is True
    [row] = rows(store)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, clock.now)
    assert len(claim(store, clock.now)) == 1


def test_retry_refuses_sent_sending_and_missing_messages(store: Store, cipher) -> None:
    queue(store, cipher, 2)
    first, second = claim(store, T0)
    with store.transaction() as db:
        outbox.mark_sent(db, first, T0)
    with store.transaction() as db:
        assert outbox.retry(db, first.id, T0) is False
        assert outbox.retry(db, second.id, T0) is False
        assert outbox.retry(db, 999, T0) is False


def test_note_unsendable_explains_waiting_messages_without_hiding_real_errors(store: Store, cipher) -> None:
    with store.transaction() as db:
        outbox.enqueue(db, message(1, "sms"), cipher, T0)
        outbox.enqueue(db, message(2, "sms"), cipher, T0)
        outbox.enqueue(db, message(3, "email"), cipher, T0)
    with store.transaction() as db:
        [row] = outbox.claim_due(db, T0, 1, ("sms",))
    fail(store, row, T0, error="the SMS gateway answered HTTP 500")
    with store.transaction() as db:
        assert outbox.note_unsendable(db, "sms", "no SMS gateway configured") == 1
    assert [(r.channel, r.status, r.last_error) for r in rows(store)] == [
        ("sms", "pending", "the SMS gateway answered HTTP 500"),
        ("sms", "pending", "no SMS gateway configured"),
        ("email", "pending", ""),
    ]


def test_list_messages_newest_first_by_status_and_page(store: Store, cipher) -> None:
    queue(store, cipher, 5)
    claim(store, T0, limit=2)
    with store.read() as db:
        assert [r.study_uid for r in outbox.list_messages(db)] == [f"1.2.3.{n}" for n in (4, 3, 2, 1, 0)]
        assert [r.study_uid for r in outbox.list_messages(db, "sending")] == ["1.2.3.1", "1.2.3.0"]
        assert [r.study_uid for r in outbox.list_messages(db, "pending", 1, 1)] == ["1.2.3.3"]

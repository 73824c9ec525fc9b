"""Persistence of the outbox: messages written with what caused them, claimed, sent, retried or given up."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.fernet import MultiFernet
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from plugin.config import OutboxSettings
from plugin.policies.outbox import is_dead, retry_delay
from plugin.store.models import OutboxMessage

CHANNELS = ("email", "sms")
STATUSES = ("pending", "sending", "sent", "dead", "cancelled")
MAX_ERROR = 512


@dataclass(frozen=True)
class NewMessage:
    """A rendered message before it is queued (notify/messages.py builds them). At most one message is
    ever queued per `idempotency_key`, however often or on however many nodes it is asked for."""

    idempotency_key: str
    channel: str  # email | sms
    kind: str  # study_ready | welcome | ...
    recipient: str  # an e-mail address, or a number in E.164 form
    subject: str
    text: str
    html: str
    study_uid: str | None = None
    doctor_id: int | None = None


def enqueue(db: DbSession, message: NewMessage, cipher: MultiFernet, now: float, send_at: float | None = None) -> bool:
    """Queue the message in the caller's transaction (it is sent only if that commits), to go at once
    or not before `send_at` (a reminder). False when a message with its idempotency key exists
    already: another node or an earlier run queued it."""
    if message.channel not in CHANNELS:
        raise ValueError(f"unknown outbox channel {message.channel!r}")
    payload = json.dumps({"subject": message.subject, "text": message.text, "html": message.html})
    row = OutboxMessage(idempotency_key=message.idempotency_key, channel=message.channel, kind=message.kind,
                        recipient=cipher.encrypt(message.recipient.encode()).decode(),
                        payload=cipher.encrypt(payload.encode()).decode(), status="pending", attempts=0,
                        next_attempt_at=max(now, send_at or now), claimed_at=None, last_error="",
                        study_uid=message.study_uid, doctor_id=message.doctor_id, created_at=now, sent_at=None)
    try:
        with db.begin_nested():  # only this insert is undone when the key is taken
            db.add(row)
            db.flush()
    except IntegrityError:
        return False
    return True


def cancel_pending(db: DbSession, idempotency_keys: list[str]) -> int:
    """Messages not sent yet that must no longer go (a revoked share's reminder); how many."""
    if not idempotency_keys:
        return 0
    return db.execute(update(OutboxMessage)
                      .where(OutboxMessage.idempotency_key.in_(idempotency_keys), OutboxMessage.status == "pending")
                      .values(status="cancelled", next_attempt_at=0.0)
                      .execution_options(synchronize_session=False)).rowcount


def claim_due(db: DbSession, now: float, limit: int, channels: tuple[str, ...] = CHANNELS) -> list[OutboxMessage]:
    """Move up to `limit` pending messages of `channels` that are due to `sending` and return them. Each
    row is taken by a conditional update, so of two workers (or nodes) only one ever gets it."""
    due = db.execute(select(OutboxMessage.id)
                     .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
                            OutboxMessage.channel.in_(channels))
                     .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit)).scalars().all()
    claimed = [message_id for message_id in due
               if db.execute(update(OutboxMessage)
                             .where(OutboxMessage.id == message_id, OutboxMessage.status == "pending")
                             .values(status="sending", claimed_at=now)
                             .execution_options(synchronize_session=False)).rowcount == 1]
    if not claimed:
        return []
    return list(db.execute(select(OutboxMessage).where(OutboxMessage.id.in_(claimed)).order_by(OutboxMessage.id)
                           .execution_options(populate_existing=True)).scalars())


def mark_sent(db: DbSession, row: OutboxMessage, now: float) -> None:
    """The server took the message. Recorded even if the claim went stale meanwhile: it was sent."""
    db.execute(update(OutboxMessage)
               .where(OutboxMessage.id == row.id, OutboxMessage.status.in_(("pending", "sending")))
               .values(status="sent", sent_at=now, claimed_at=None, last_error="")
               .execution_options(synchronize_session=False))


def mark_failed(db: DbSession, row: OutboxMessage, error: str, now: float, settings: OutboxSettings,
                jitter: float) -> str:
    """Count a failed try: back to `pending` after the backoff, or `dead` after MaxAttempts. `error`
    must name neither the recipient nor the content. Returns the row's status now; a row whose claim
    is no longer this one (released as stale and claimed again) is left to its new owner."""
    current = db.execute(select(OutboxMessage).where(OutboxMessage.id == row.id).with_for_update()
                         .execution_options(populate_existing=True)).scalar_one_or_none()
    if current is None or current.status != "sending" or current.claimed_at != row.claimed_at:
        return current.status if current is not None else "gone"
    current.attempts += 1
    current.last_error = error[:MAX_ERROR]
    current.claimed_at = None
    if is_dead(current.attempts, settings.max_attempts):
        current.status = "dead"
    else:
        current.status = "pending"
        current.next_attempt_at = now + retry_delay(current.attempts, settings.retry_base_seconds,
                                                    settings.retry_max_seconds, jitter)
    db.flush()
    row.attempts, row.status, row.last_error = current.attempts, current.status, current.last_error
    return current.status


def unclaim(db: DbSession, row: OutboxMessage) -> None:
    """Give back a claimed message that was not tried (the worker is stopping): no attempt counted."""
    db.execute(update(OutboxMessage)
               .where(OutboxMessage.id == row.id, OutboxMessage.status == "sending",
                      OutboxMessage.claimed_at == row.claimed_at)
               .values(status="pending", claimed_at=None)
               .execution_options(synchronize_session=False))


def release_stale(db: DbSession, now: float, older_than: float) -> int:
    """Put messages claimed more than `older_than` seconds ago, and never recorded as sent or failed,
    back to `pending`; how many. Their worker died (a crash, a killed node) while it held them.

    Such a message may be sent a second time, but only if the process died after handing it to the
    server and before recording that: losing it would be worse. The e-mail's Message-ID stays the
    same (notify/email.py), so a receiver can still drop the copy.
    """
    return db.execute(update(OutboxMessage)
                      .where(OutboxMessage.status == "sending", OutboxMessage.claimed_at < now - older_than)
                      .values(status="pending", claimed_at=None)
                      .execution_options(synchronize_session=False)).rowcount


def note_unsendable(db: DbSession, channel: str, reason: str) -> int:
    """Say why pending messages of a channel nothing can send (no server configured) are waiting,
    where no other error is shown yet. They stay pending and due: sent once a server is set up."""
    return db.execute(update(OutboxMessage)
                      .where(OutboxMessage.status == "pending", OutboxMessage.channel == channel,
                             OutboxMessage.last_error == "")
                      .values(last_error=reason[:MAX_ERROR])
                      .execution_options(synchronize_session=False)).rowcount


def message_by_id(db: DbSession, message_id: int) -> OutboxMessage | None:
    return db.get(OutboxMessage, message_id)


def list_messages(db: DbSession, status: str | None = None, offset: int = 0, limit: int = 100) -> list[OutboxMessage]:
    """Newest first; all statuses when `status` is None."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc())
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    return list(db.execute(query.offset(offset).limit(limit)).scalars())


def retry(db: DbSession, message_id: int, now: float) -> bool:
    """A dead (or waiting) message back to `pending`, due now, with its tries counted from zero again.
    False when there is no such message or it is being sent or was sent."""
    return db.execute(update(OutboxMessage)
                      .where(OutboxMessage.id == message_id, OutboxMessage.status.in_(("dead", "pending")))
                      .values(status="pending", attempts=0, next_attempt_at=now, claimed_at=None)
                      .execution_options(synchronize_session=False)).rowcount == 1

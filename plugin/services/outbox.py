"""The outbox as admins see it: what is queued, sent or given up, and retrying a message given up."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet

from plugin.audit.record import AuditRecord, iso_utc
from plugin.errors import BadRequest, Conflict, NotFound
from plugin.policies import doctors as paging
from plugin.policies.outbox import mask_email, mask_phone
from plugin.services.accounts import AuditSink
from plugin.services.users import Actor
from plugin.store import outbox
from plugin.store.db import Store
from plugin.store.models import OutboxMessage

ROUTE_CLASS = "outbox"
RETRYABLE = ("dead", "pending")


def list_outbox(store: Store, cipher: MultiFernet, status: str | None = None, offset: str | None = None,
                limit: str | None = None) -> list[dict[str, Any]]:
    """A page of messages, newest first, of one status or all; recipients masked, content not shown.
    The arguments are the query's text, checked here."""
    if status is not None and status != "" and status not in outbox.STATUSES:
        raise BadRequest(f'"status" must be one of {", ".join(outbox.STATUSES)}')
    try:
        first, count = paging.page(offset, limit)
    except paging.Invalid as exc:
        raise BadRequest(str(exc)) from exc
    with store.read() as db:
        return [message_view(row, cipher) for row in outbox.list_messages(db, status or None, first, count)]


def retry_message(store: Store, audit: AuditSink, actor: Actor, now: float, message_id: int) -> dict[str, Any]:
    """Send a message given up (or one waiting for its next try) again now, with all its tries back."""
    with store.transaction() as db:
        row = outbox.message_by_id(db, message_id)
        if row is None:
            raise NotFound(f"No message {message_id}")
        if row.status not in RETRYABLE or not outbox.retry(db, message_id, now):
            raise Conflict(f"Message {message_id} is {row.status}: only a dead or pending message can be retried")
        before = (row.status, row.attempts, row.kind, row.channel, row.study_uid)
    status, attempts, kind, channel, study_uid = before
    audit(AuditRecord(ts=iso_utc(now), actor=actor.username, action="outbox.retry", outcome="success",
                      reason=f"retried message {message_id} ({kind}, {channel}), {status} after {attempts} attempts",
                      roles=",".join(sorted(actor.roles)), source_ip=actor.ip, route_class=ROUTE_CLASS,
                      study_uid=study_uid or ""))
    return {"id": message_id, "retried": True, "status": "pending", "previous_status": status}


def message_view(row: OutboxMessage, cipher: MultiFernet) -> dict[str, Any]:
    return {"id": row.id, "channel": row.channel, "kind": row.kind, "recipient": _masked(row, cipher),
            "status": row.status, "attempts": row.attempts, "next_attempt_at": iso_utc(row.next_attempt_at),
            "last_error": row.last_error, "study_uid": row.study_uid, "doctor_id": row.doctor_id,
            "created_at": iso_utc(row.created_at), "sent_at": iso_utc(row.sent_at) if row.sent_at else None}


def _masked(row: OutboxMessage, cipher: MultiFernet) -> str:
    try:
        recipient = cipher.decrypt(row.recipient.encode()).decode()
    except (InvalidToken, ValueError):
        return "(unreadable: ContactKeyFile replaced?)"
    return mask_email(recipient) if row.channel == "email" else mask_phone(recipient)

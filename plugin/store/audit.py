"""Persistence of the audit chain: append batches under the head lock, checkpoints, reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import String, func, or_, select
from sqlalchemy.orm import Session

from plugin.store.models import AuditCheckpoint, AuditEvent, AuditHead

# The width of each bounded text column: PostgreSQL refuses a longer value (SQLite keeps it).
WIDTHS = {column.name: column.type.length for column in AuditEvent.__table__.columns
          if isinstance(column.type, String) and column.type.length}


def fitted(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as every store keeps it, before it is hashed: each text cut to its column's width
    and NUL (which PostgreSQL's text cannot hold) replaced by U+FFFD. A request naming an over-long
    path or a username with a NUL is still recorded, and the chain hashes exactly what is stored."""
    row = dict(record)
    for name, value in row.items():
        if isinstance(value, str):
            value = value.replace("\x00", "\ufffd")
            width = WIDTHS.get(name)
            row[name] = value[:width] if width else value
    return row


def append_events(session: Session, records: Sequence[Mapping[str, Any]],
                  row_hash: Callable[[Mapping[str, Any]], str]) -> list[int]:
    """Append records to the chain in one transaction; returns their ids in order.

    The head row is locked first (SELECT ... FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE
    has already taken the write lock), so appenders in several processes never fork the chain.
    `row_hash` is the chain's hash function (audit/chain.py), given the row with id and prev_hash.
    """
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    ids = []
    last_id, last_hash = head.last_id, head.last_hash
    for record in records:
        row = fitted(record)
        row["id"] = last_id + 1
        row["prev_hash"] = last_hash
        row["row_hash"] = row_hash(row)
        session.add(AuditEvent(**row))
        last_id, last_hash = row["id"], row["row_hash"]
        ids.append(last_id)
    head.last_id, head.last_hash = last_id, last_hash
    return ids


def append_checkpoint(session: Session, sign: Callable[[int, str], str],
                      created_at: str) -> dict[str, Any] | None:
    """Sign the current head; None when the chain is empty or the head is already signed."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    if head.last_id == 0:
        return None
    latest = session.execute(select(AuditCheckpoint.audit_id).order_by(AuditCheckpoint.id.desc())
                             .limit(1)).scalar_one_or_none()
    if latest == head.last_id:
        return None
    checkpoint = AuditCheckpoint(audit_id=head.last_id, row_hash=head.last_hash, created_at=created_at,
                                 mac=sign(head.last_id, head.last_hash))
    session.add(checkpoint)
    return {"audit_id": checkpoint.audit_id, "row_hash": checkpoint.row_hash,
            "created_at": created_at, "mac": checkpoint.mac}


def iter_events(session: Session, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every audit row in id order, as plain dicts, read in batches."""
    last = 0
    columns = AuditEvent.__table__.columns
    while True:
        rows = session.execute(select(AuditEvent).where(AuditEvent.id > last)
                               .order_by(AuditEvent.id).limit(batch)).scalars().all()
        if not rows:
            return
        for row in rows:
            yield {c.name: getattr(row, c.name) for c in columns}
        last = rows[-1].id


def checkpoints(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.id)).scalars().all()
    return [{"audit_id": r.audit_id, "row_hash": r.row_hash, "created_at": r.created_at, "mac": r.mac}
            for r in rows]


def head(session: Session) -> dict[str, Any]:
    row = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    return {"last_id": row.last_id, "last_hash": row.last_hash}


# -- reads for the audit viewer and its reports (services/audit_reports.py) -------------------------

EVENT_COLUMNS = tuple(c.name for c in AuditEvent.__table__.columns)


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def names_patient(patient_id: str, list_cut: str) -> Any:
    """Rows that may name `patient_id`: it alone, or in a comma-separated list, or a list cut to fit
    and ended with `list_cut` (audit/record.py `patients_named`). A superset: the exact list of a
    row naming several is in its detail (services/audit_reports.py reads it)."""
    like = _like_literal(patient_id)
    column = AuditEvent.patient_id
    return or_(column == patient_id, column.like(like + ",%", escape="\\"),
               column.like("%," + like, escape="\\"), column.like("%," + like + ",%", escape="\\"),
               column.like("%" + _like_literal(list_cut), escape="\\"))


def event_filter(*, since: str | None = None, until: str | None = None, actor: str | None = None,
                 patient_id: str | None = None, study_uid: str | None = None, action: str | None = None,
                 outcome: str | None = None, outcomes: Sequence[str] = (), list_cut: str = "") -> list[Any]:
    """The WHERE clauses of an audit search (timestamps are the rows' own ISO strings, which sort)."""
    clauses: list[Any] = []
    if since:
        clauses.append(AuditEvent.ts >= since)
    if until:
        clauses.append(AuditEvent.ts <= until)
    if actor:
        clauses.append(AuditEvent.actor == actor)
    if patient_id:
        clauses.append(names_patient(patient_id, list_cut) if list_cut else AuditEvent.patient_id == patient_id)
    if study_uid:
        clauses.append(AuditEvent.study_uid == study_uid)
    if action:
        clauses.append(AuditEvent.action == action)
    if outcome:
        clauses.append(AuditEvent.outcome == outcome)
    if outcomes:
        clauses.append(AuditEvent.outcome.in_(list(outcomes)))
    return clauses


def _row(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in EVENT_COLUMNS}


def search_events(session: Session, clauses: list[Any], limit: int,
                  before_id: int | None = None) -> list[dict[str, Any]]:
    """The newest matching rows first, at most `limit`, older than `before_id` when given."""
    query = select(AuditEvent).where(*clauses)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return [_row(e) for e in session.execute(query.order_by(AuditEvent.id.desc()).limit(limit)).scalars()]


def count_events(session: Session, clauses: list[Any]) -> int:
    return session.execute(select(func.count()).select_from(AuditEvent).where(*clauses)).scalar_one()


def iter_matching(session: Session, clauses: list[Any], batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every matching row, oldest first, read in batches."""
    last = 0
    while True:
        rows = session.execute(select(AuditEvent).where(AuditEvent.id > last, *clauses)
                               .order_by(AuditEvent.id).limit(batch)).scalars().all()
        if not rows:
            return
        yield from (_row(r) for r in rows)
        last = rows[-1].id

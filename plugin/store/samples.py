"""Persistence of the server's size samples (the admin dashboard's plots)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from plugin.store.models import ServerSample


def add_sample(db: Session, sample: ServerSample) -> None:
    db.add(sample)


def samples_since(db: Session, since: float) -> list[ServerSample]:
    return list(db.execute(select(ServerSample).where(ServerSample.taken_at >= since)
                           .order_by(ServerSample.taken_at)).scalars())


def last_before(db: Session, before: float) -> ServerSample | None:
    """The newest sample taken before `before` (a plot's baseline)."""
    return db.execute(select(ServerSample).where(ServerSample.taken_at < before)
                      .order_by(ServerSample.taken_at.desc()).limit(1)).scalar_one_or_none()


def prune(db: Session, before: float) -> None:
    db.execute(delete(ServerSample).where(ServerSample.taken_at < before))

"""Persistence of failed sign-in attempts (kept in the store, so a restart does not reset a lock)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession

from plugin.policies.lockout import Attempts
from plugin.store.models import SignInAttempts


def load(db: DbSession, keys: list[str]) -> dict[str, Attempts]:
    rows = db.execute(select(SignInAttempts).where(SignInAttempts.key.in_(keys))).scalars()
    return {r.key: Attempts(r.failures, r.window_start, r.locked_until) for r in rows}


def save(db: DbSession, key: str, attempts: Attempts) -> None:
    row = db.get(SignInAttempts, key)
    if row is None:
        db.add(SignInAttempts(key=key, failures=attempts.failures, window_start=attempts.window_start,
                              locked_until=attempts.locked_until))
    else:
        row.failures, row.window_start = attempts.failures, attempts.window_start
        row.locked_until = attempts.locked_until


def forget(db: DbSession, key: str) -> None:
    db.execute(delete(SignInAttempts).where(SignInAttempts.key == key))


def prune(db: DbSession, before: float) -> None:
    """Drop records whose window and lock are both over (sprays of made-up names leave many)."""
    db.execute(delete(SignInAttempts).where(SignInAttempts.window_start < before, SignInAttempts.locked_until < before))

"""Persistence of set-password links (only the SHA-256 of each token is kept)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession

from plugin.store.models import PasswordToken


def add_token(db: DbSession, token: PasswordToken) -> PasswordToken:
    db.add(token)
    db.flush()
    return token


def token_by_hash(db: DbSession, token_hash: str) -> PasswordToken | None:
    return db.execute(select(PasswordToken).where(PasswordToken.token_hash == token_hash)).scalar_one_or_none()


def end_unused_tokens(db: DbSession, username: str, now: float) -> int:
    """Make the user's unused, unexpired links expire now; how many there were."""
    return db.execute(update(PasswordToken).where(
        PasswordToken.username == username, PasswordToken.used_at.is_(None), PasswordToken.expires_at > now)
        .values(expires_at=now)).rowcount

"""Persistence of users, API keys and sessions."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession

from plugin.store.models import ApiKey, Session, User


def user_by_name(db: DbSession, username: str) -> User | None:
    return db.execute(select(User).where(User.username == username)).scalar_one_or_none()


def user_by_id(db: DbSession, user_id: int) -> User | None:
    return db.get(User, user_id)


def any_admin(db: DbSession) -> bool:
    users = db.execute(select(User.roles).where(User.disabled.is_(False))).scalars()
    return any("admin" in roles.split(",") for roles in users)


def add_user(db: DbSession, user: User) -> User:
    db.add(user)
    db.flush()
    return user


def add_api_key(db: DbSession, key: ApiKey) -> ApiKey:
    db.add(key)
    db.flush()
    return key


def api_key_owner(db: DbSession, key_hash: str) -> tuple[ApiKey, User] | None:
    row = db.execute(select(ApiKey, User).join(User, ApiKey.user_id == User.id)
                     .where(ApiKey.key_hash == key_hash)).first()
    return (row[0], row[1]) if row else None


def add_session(db: DbSession, session: Session) -> None:
    db.add(session)


def session_with_user(db: DbSession, session_id: str) -> tuple[Session, User] | None:
    row = db.execute(select(Session, User).join(User, Session.user_id == User.id)
                     .where(Session.id == session_id)).first()
    return (row[0], row[1]) if row else None


def touch_session(db: DbSession, session_id: str, now: float) -> None:
    db.execute(update(Session).where(Session.id == session_id).values(last_seen_at=now))


def revoke_session(db: DbSession, session_id: str, now: float) -> None:
    db.execute(update(Session).where(Session.id == session_id, Session.revoked_at.is_(None))
               .values(revoked_at=now))


def revoke_user_sessions(db: DbSession, user_id: int, now: float) -> None:
    db.execute(update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None))
               .values(revoked_at=now))


def upsert_directory_user(db: DbSession, username: str, roles: str, email: str, display_name: str,
                          now: float) -> User:
    """Create or refresh the row of a directory account; its roles are recomputed at every sign-in."""
    user = user_by_name(db, username)
    if user is None:
        user = User(username=username, source="directory", password_hash=None, disabled=False,
                    must_change_password=False, created_at=now)
        db.add(user)
    user.roles, user.email, user.display_name, user.updated_at = roles, email, display_name, now
    db.flush()
    return user

"""Persistence of users, API keys and sessions."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session as DbSession

from plugin.store.models import ApiKey, RecoveryCode, Session, User


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


def revoke_user_sessions(db: DbSession, user_id: int, now: float, keep: str | None = None) -> int:
    """End the account's open sessions (all but `keep`, a session id); how many were ended."""
    condition = [Session.user_id == user_id, Session.revoked_at.is_(None)]
    if keep is not None:
        condition.append(Session.id != keep)
    return db.execute(update(Session).where(*condition).values(revoked_at=now)).rowcount


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


def replace_recovery_codes(db: DbSession, user_id: int, code_hashes: list[str]) -> None:
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    db.add_all(RecoveryCode(user_id=user_id, code_hash=h) for h in code_hashes)


def spend_recovery_code(db: DbSession, user_id: int, code_hash: str, now: float) -> bool:
    """Mark an unused recovery code used; False if there is none (or it was spent meanwhile)."""
    result = db.execute(update(RecoveryCode).where(RecoveryCode.user_id == user_id, RecoveryCode.code_hash == code_hash,
                                                   RecoveryCode.used_at.is_(None)).values(used_at=now))
    return result.rowcount == 1


def advance_totp_step(db: DbSession, user_id: int, step: int) -> bool:
    """Record `step` as spent; False if this or a later step was spent already (a replay)."""
    result = db.execute(update(User).where(User.id == user_id, User.totp_last_step < step)
                        .values(totp_last_step=step))
    return result.rowcount == 1


def mark_session_mfa(db: DbSession, session_id: str, now: float) -> None:
    db.execute(update(Session).where(Session.id == session_id).values(mfa_at=now))


def all_users(db: DbSession) -> list[User]:
    return list(db.execute(select(User).order_by(User.username)).scalars())


def usernames(db: DbSession) -> set[str]:
    return set(db.execute(select(User.username)).scalars())


def add_users(db: DbSession, users: list[User]) -> None:
    db.add_all(users)
    db.flush()


def api_key_by_id(db: DbSession, key_id: int) -> ApiKey | None:
    return db.get(ApiKey, key_id)


def session_mfa_at(db: DbSession, session_id: str) -> float | None:
    """When the session last proved a one-time code; None if never (or no such session)."""
    return db.execute(select(Session.mfa_at).where(Session.id == session_id)).scalar_one_or_none()

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


def user_by_directory_id(db: DbSession, directory_id: str) -> User | None:
    return db.execute(select(User).where(User.directory_id == directory_id)).scalar_one_or_none()


def upsert_directory_account(db: DbSession, directory_id: str, login: str, roles: str, email: str,
                             display_name: str, now: float) -> User | None:
    """The row of a directory entry, created or refreshed (its roles are recomputed at every sign-in
    and re-check). None when a local account has the entry's name: a directory entry never takes
    over a local account.

    A row of this name made before accounts were keyed by entry is adopted; one keyed by another
    entry (that entry is gone, or renamed) is retired: renamed, disabled, its sessions and keys ended.
    """
    user = user_by_directory_id(db, directory_id)
    if user is None:
        named = user_by_name(db, login)
        if named is not None and named.source == "local":
            return None
        if named is not None and named.directory_id is None:
            user = named
        else:
            if named is not None:
                retire_user(db, named, f"{login}~{named.id}", now)
            user = User(username=login, source="directory", password_hash=None, disabled=False,
                        must_change_password=False, created_at=now)
            db.add(user)
        user.directory_id = directory_id
    elif user.username != login and user_by_name(db, login) is None:
        user.username = login  # renamed in the directory
    user.roles, user.email, user.display_name = roles, email, display_name
    user.directory_checked_at = user.updated_at = now
    db.flush()
    return user


def retire_user(db: DbSession, user: User, new_name: str, now: float) -> None:
    """Disable an account for good: its sessions and API keys end, its name is freed."""
    user.username, user.disabled, user.updated_at = new_name[:128], True, now
    revoke_user_sessions(db, user.id, now)
    revoke_user_api_keys(db, user.id, now)
    db.flush()


def revoke_user_api_keys(db: DbSession, user_id: int, now: float) -> int:
    return db.execute(update(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                      .values(revoked_at=now)).rowcount


def directory_users_to_recheck(db: DbSession, checked_before: float, now: float) -> list[User]:
    """Enabled directory accounts that can still act without the directory (an open session or a
    live API key) and were not re-read since `checked_before` (never, for rows made before
    accounts were keyed by entry)."""
    open_session = select(Session.id).where(Session.user_id == User.id, Session.revoked_at.is_(None),
                                            Session.expires_at > now).exists()
    live_key = select(ApiKey.id).where(ApiKey.user_id == User.id, ApiKey.revoked_at.is_(None),
                                       (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now)).exists()
    return list(db.execute(select(User).where(
        User.source == "directory", User.disabled.is_(False),
        (User.directory_checked_at.is_(None)) | (User.directory_checked_at < checked_before),
        open_session | live_key)).scalars())


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


def api_keys_of(db: DbSession, user_id: int) -> list[ApiKey]:
    return list(db.execute(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id)).scalars())


def api_key_by_id(db: DbSession, key_id: int) -> ApiKey | None:
    return db.get(ApiKey, key_id)


def session_mfa_at(db: DbSession, session_id: str) -> float | None:
    """When the session last proved a one-time code; None if never (or no such session)."""
    return db.execute(select(Session.mfa_at).where(Session.id == session_id)).scalar_one_or_none()

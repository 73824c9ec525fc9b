"""Set-password links (the welcome e-mail's): issued for a local account, used once, expiring.

Only the SHA-256 of a token is stored, so the link is found by its hash (a database look-up of a
hash tells nothing about how close a guess came). A used, expired and unknown link all show the
same page; used and expired answer 410, unknown 404, and nothing else tells them apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session as DbSession

from plugin.errors import BadRequest, GateError
from plugin.identity.secrets import hash_password, new_token, token_hash
from plugin.services.accounts import AuditSink, account_event, check_password
from plugin.store import accounts
from plugin.store import password_tokens as token_store
from plugin.store.db import Store
from plugin.store.models import PasswordToken, User

EXPIRED_MESSAGE = "This link has expired or was already used; ask your practice for a new one."
# What secrets.token_urlsafe(32) makes (43 characters); anything else cannot be a link of ours.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,128}")


class LinkUnusable(GateError):
    """A used or expired link (410), or one that was never issued (404): one message for all."""

    code = "link_expired"

    def __init__(self, status: int, username: str = "") -> None:
        super().__init__(EXPIRED_MESSAGE)
        self.status = status
        self.username = username  # for the audit only, never for the answer


@dataclass(frozen=True)
class PasswordLink:
    username: str
    expires_at: float


def issue(db: DbSession, username: str, now: float, hours: float) -> str:
    """A new link's token for a local account, inside the caller's transaction (the account may
    have been made in it). Earlier unused links of the account stop working."""
    user = accounts.user_by_name(db, username)
    if user is None or user.source != "local":
        raise BadRequest(f"{username!r} is not a local account")
    if hours <= 0:
        raise BadRequest("A link must be valid for some time")
    token_store.end_unused_tokens(db, username, now)
    token = new_token()
    token_store.add_token(db, PasswordToken(token_hash=token_hash(token), username=username, created_at=now,
                                            expires_at=now + hours * 3600))
    return token


def check(store: Store, token: str, now: float) -> PasswordLink:
    """The account a usable link sets the password of; LinkUnusable otherwise."""
    with store.read() as db:
        row, _user = _usable(db, token, now)
        return PasswordLink(row.username, row.expires_at)


def redeem(store: Store, audit: AuditSink, token: str, new_password: str, now: float, ip: str) -> str:
    """Set the account's password with a usable link, once: the link is spent, the account no longer
    owes a new password, its sessions end. Audited. Returns the username."""
    try:
        link = check(store, token, now)  # before the slow hash: a dead link costs nothing
        check_password(new_password, link.username)  # the rules every password of ours follows
        password_hash = hash_password(new_password)
        with store.transaction() as db:  # the write lock: of two redemptions, one finds the link used
            row, user = _usable(db, token, now)
            user.password_hash = password_hash
            user.must_change_password = False
            user.updated_at = now
            row.used_at = now
            ended = accounts.revoke_user_sessions(db, user.id, now)
    except LinkUnusable as exc:
        audit(account_event(now, exc.username or "anonymous", "password.link", "failure",
                            f"set-password link refused ({'unknown' if exc.status == 404 else 'used or expired'})", ip))
        raise
    audit(account_event(now, user.username, "password.link", "success",
                        f"password set with a set-password link; {ended} session(s) ended", ip))
    return user.username


def _usable(db: DbSession, token: str, now: float) -> tuple[PasswordToken, User]:
    row = token_store.token_by_hash(db, token_hash(token)) if TOKEN_SHAPE.fullmatch(token or "") else None
    if row is None:
        raise LinkUnusable(404)
    user = accounts.user_by_name(db, row.username)
    if row.used_at is not None or row.expires_at <= now or user is None or user.disabled or user.source != "local":
        raise LinkUnusable(410, row.username)
    return row, user

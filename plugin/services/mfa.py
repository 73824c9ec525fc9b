"""Second-factor use cases: enrol (secret + QR), confirm (recovery codes), reset. All audited."""

from __future__ import annotations

from dataclasses import dataclass

import segno

from plugin.errors import BadRequest, NotFound
from plugin.identity.mfa import Mfa
from plugin.policies.types import Principal
from plugin.services.accounts import AuditSink, account_event
from plugin.store import accounts
from plugin.store.db import Store


@dataclass(frozen=True)
class Enrolment:
    secret: str  # shown as text too, for apps that cannot scan
    qr_svg: str  # an inline SVG of the otpauth:// URI


def _user_id(store: Store, username: str) -> int:
    with store.read() as db:
        user = accounts.user_by_name(db, username)
    if user is None:
        raise NotFound(f"No user {username!r}")
    return user.id


def is_enrolled(store: Store, username: str) -> bool:
    with store.read() as db:
        user = accounts.user_by_name(db, username)
    return bool(user and user.totp_enabled)


def begin(store: Store, mfa: Mfa, principal: Principal) -> Enrolment:
    secret, uri = mfa.pending_secret(_user_id(store, principal.username or ""))
    # A viewBox and no fixed size: the page's CSS scales it whole (a fixed width and height, shrunk
    # by CSS, cropped it, and phones could not read it); black on white, with the standard
    # four-module quiet zone a camera needs around it.
    qr = segno.make(uri, error="m").svg_inline(omitsize=True, border=4, dark="#000", light="#fff",
                                               title="one-time code set-up", svgclass="qr-code")
    return Enrolment(secret, qr)


def confirm(store: Store, mfa: Mfa, audit: AuditSink, principal: Principal, code: str, now: float,
            ip: str) -> list[str]:
    """Turn MFA on with a first code; the session counts as having proved it. Returns recovery codes."""
    codes = mfa.confirm(_user_id(store, principal.username or ""), code, now)
    if codes is None:
        raise BadRequest("That code does not match; check the time on your phone and try the next code")
    if principal.session_id:
        with store.transaction() as db:
            accounts.mark_session_mfa(db, principal.session_id, now)
    audit(account_event(now, principal.username or "", "mfa.enrol", "success",
                        "one-time codes turned on; 10 recovery codes issued", ip))
    return codes


def reset(store: Store, mfa: Mfa, audit: AuditSink, actor: str, username: str, now: float) -> None:
    """Forget an account's secret and recovery codes: it enrols again at its next sign-in."""
    mfa.reset(_user_id(store, username))
    with store.transaction() as db:
        user = accounts.user_by_name(db, username)
        accounts.revoke_user_sessions(db, user.id, now)
    audit(account_event(now, actor, "mfa.reset", "success",
                        f"one-time codes reset for {username}; their sessions ended"))

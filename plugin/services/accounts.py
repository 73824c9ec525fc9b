"""Account use cases: sign-in and sign-out, password changes, and the checks of account fields. All
audited. (Creating, changing and disabling accounts and their API keys is services/users.py.)"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from plugin.audit.record import AuditRecord, iso_utc
from plugin.errors import BadRequest, DirectoryDown, OtpRequired, RateLimited, Unauthenticated, unavailable_message
from plugin.identity.authenticate import Authenticator
from plugin.identity.mfa import WRONG_CODE, CodeCheck, Mfa, needs_mfa
from plugin.identity.secrets import hash_password, new_token, token_hash, verify_password
from plugin.policies.passwords import MIN_LENGTH, password_problem
from plugin.policies.types import ROLE_NAMES, Principal
from plugin.store import accounts
from plugin.store.db import Store
from plugin.store.models import Session

AuditSink = Callable[[AuditRecord], bool]
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
MIN_PASSWORD_LENGTH = MIN_LENGTH  # the password rules are policies/passwords.py


@dataclass(frozen=True)
class SignIn:
    token: str  # the cookie value, shown to the browser once
    csrf_token: str
    principal: Principal


def account_event(now: float, actor: str, action: str, outcome: str, reason: str, ip: str = "", roles: str = "",
           detail: str = "") -> AuditRecord:
    """An audit record of an account change or a sign-in (route class "account")."""
    return AuditRecord(ts=iso_utc(now), actor=actor, action=action, outcome=outcome, reason=reason,
                       source_ip=ip, roles=roles, route_class="account", detail=detail)


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username or ""):
        raise BadRequest("Usernames are 1-128 characters: letters, digits and . _ @ - "
                         "(starting with a letter or digit)")
    return username


def check_roles(roles: list[str]) -> list[str]:
    unknown = sorted(set(roles) - ROLE_NAMES)
    if unknown:
        raise BadRequest(f"Unknown role {unknown[0]!r}; roles are {', '.join(sorted(ROLE_NAMES))}")
    if not roles:
        raise BadRequest("Give at least one role")
    return sorted(set(roles))


def check_password(password: str, username: str = "") -> str:
    """The one check every new password of ours passes, whoever sets it (policies/passwords.py)."""
    problem = password_problem(password, username)
    if problem is not None:
        raise BadRequest(problem, "password")
    return password


def sign_in(store: Store, audit: AuditSink, authenticator: Authenticator, now: float, username: str,
            password: str, ip: str, idle_seconds: float, max_seconds: float, *, mfa: Mfa | None = None,
            otp: str = "", refusals: AuditSink | None = None) -> SignIn:
    """Check a password (local account or directory), and a one-time code for enrolled accounts,
    then open a new session (a new id every time: no fixation).

    An account that needs MFA but has not enrolled yet gets a session that can only enrol.
    Attempts refused unchecked because the account or address is locked go to `refusals` (which
    may coalesce them) rather than `audit`.
    """
    check = authenticator.check_password(username, password, now, ip=ip)
    if check.user is None:
        sink = refusals if check.retry_after and refusals is not None else audit
        sink(account_event(now, username[:128] or "anonymous", "login", "failure", check.failure, ip))
        if check.unavailable:
            raise DirectoryDown(unavailable_message(check.failure))
        if check.retry_after:
            raise RateLimited(check.failure, check.retry_after)
        raise Unauthenticated(check.failure)
    user = check.user
    mfa_at = None
    if user.totp_enabled:
        if not otp:
            audit(account_event(now, user.username, "login", "failure", "one-time code missing", ip))
            raise OtpRequired("Enter the 6-digit code from your authenticator app, or a recovery code")
        code = mfa.check(user.id, username, otp, now, ip, user.directory_id) if mfa is not None \
            else CodeCheck(False, WRONG_CODE)
        if not code.ok:
            audit(account_event(now, user.username, "login", "failure", code.failure, ip))
            if code.retry_after:
                raise RateLimited(code.failure, code.retry_after)
            raise Unauthenticated(code.failure)
        authenticator.sign_in_completed(username, user.directory_id)
        mfa_at = now
    token, csrf = new_token(), secrets.token_urlsafe(24)
    with store.transaction() as db:
        accounts.add_session(db, Session(id=token_hash(token), user_id=user.id, csrf_token=csrf, source_ip=ip,
                                         created_at=now, last_seen_at=now, expires_at=now + max_seconds,
                                         mfa_at=mfa_at))
    principal = Principal(user.username, user.role_set, "session", user.must_change_password,
                          session_id=token_hash(token),
                          mfa_pending=needs_mfa(user, authenticator.mfa_required_roles) and mfa_at is None,
                          mfa_done=mfa_at is not None)
    how = "password and one-time code" if mfa_at else "password"
    typed = "" if username == user.username else f" (typed as {username[:64]!r})"
    audit(account_event(now, user.username, "login", "success", f"signed in with {how}{typed}", ip,
                        ",".join(sorted(user.role_set))))
    return SignIn(token, csrf, principal)


def sign_out(store: Store, audit: AuditSink, now: float, principal: Principal, ip: str) -> None:
    if principal.session_id is None:
        return
    with store.transaction() as db:
        accounts.revoke_session(db, principal.session_id, now)
    audit(account_event(now, principal.username or "anonymous", "logout", "success", "signed out", ip))


def change_password(store: Store, audit: AuditSink, now: float, username: str, current: str, new: str,
                    ip: str, session_id: str | None = None, confirm: str | None = None) -> int:
    """Change one's own password; every other session of the account ends (a stolen cookie stops
    working). Returns how many sessions were ended.

    `confirm` is the new password typed again (None: not asked, as of a script). The current
    password is not asked of an account that must change its password: the only sessions it has
    signed in with that password (an admin's setting it ended the others), and can do nothing else.
    """
    if confirm is not None and confirm != new:
        raise BadRequest("The two new passwords differ; type the same one twice.", "confirm")
    check_password(new, username)
    with store.transaction() as db:
        user = accounts.user_by_name(db, username)
        if user is None:
            raise Unauthenticated("The current password is wrong.")
        if user.source != "local":
            raise BadRequest("This account's password is kept in the directory; change it there.")
        forced = user.must_change_password
        if forced:
            if verify_password(user.password_hash, new):
                raise BadRequest("Choose a password different from the one you were given.", "new")
        elif not verify_password(user.password_hash, current):
            raise Unauthenticated("The current password is wrong.")
        elif new == current:
            raise BadRequest("Choose a password different from the current one.", "new")
        user.password_hash = hash_password(new)
        user.must_change_password = False
        user.updated_at = now
        ended = accounts.revoke_user_sessions(db, user.id, now, keep=session_id)
    how = " in place of the one to change at first sign-in (proved at sign-in)" if forced else ""
    audit(account_event(now, username, "password.change", "success",
                        f"password changed{how}; {ended} other session(s) ended", ip))
    return ended

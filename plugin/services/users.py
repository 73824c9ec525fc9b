"""User administration: list, create, change and disable users, issue and revoke API keys, import
users from CSV. Every change is audited with who made it.

Privileged changes need the acting admin to have proved a one-time code within the last five
minutes (MFA_FRESH_SECONDS): changing anyone's roles, issuing an API key, and setting the password
of an admin account (new or existing). Each of those makes a new, lasting way to act with someone's
roles, so a stolen session cookie or API key alone must not be enough. Only a signed-in session can
prove a code (by having signed in or sent an "otp" moments ago); gatectl, which needs shell access
to the server, is trusted as it is.

A password an admin sets (creating or changing an account, over the API, the console or gatectl)
must be changed at the account's next sign-in, unless the request says `"must_change_password":
false`: for a service account (a DICOMweb client using Basic) that cannot change it interactively.
The flag is audited with the account's other fields.

An import is all or nothing: every row is checked first, every problem is reported with its line,
and the users are written in one transaction only when no row has a problem.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session as DbSession

from plugin.audit.record import AuditRecord, iso_utc
from plugin.errors import BadRequest, Conflict, Forbidden, MfaRequired, NotFound
from plugin.identity.attempts import account_keys
from plugin.identity.mfa import WRONG_CODE, Mfa
from plugin.identity.secrets import hash_password, new_token, one_time_password, token_hash
from plugin.policies.lockout import retry_after
from plugin.policies.types import Principal, Role
from plugin.services import mfa as mfa_service
from plugin.services import user_import
from plugin.services.accounts import AuditSink, account_event, check_password, check_roles, check_username
from plugin.services.expiry import expiry
from plugin.services.user_import import BadCsv, ImportRow, Progress, RowProblem, check_display_name, check_email
from plugin.store import accounts
from plugin.store import attempts as attempt_rows
from plugin.store.db import Store
from plugin.store.models import ApiKey, User

MFA_FRESH_SECONDS = 300.0
ADMIN = Role.ADMIN.value
FIRST_ADMIN = "admin"
MUST_CHANGE = "must_change_password"  # goes with "password" (see the module's docstring)
CREATE_FIELDS = frozenset({"username", "roles", "password", "email", "display_name", MUST_CHANGE})
CHANGE_FIELDS = frozenset({"roles", "email", "display_name", "disabled", "password", MUST_CHANGE})
API_KEY_FIELDS = frozenset({"name", "user", "expires_at"})
OTP_FIELD = "otp"
# What the directory sets at every sign-in of a directory account; changing it here would not last.
DIRECTORY_FIELDS = ("roles", "email", "display_name", "password")
INSERT_CHUNK = 50


@dataclass(frozen=True)
class Actor:
    """Who makes an admin change, from where, and how they signed in (for the fresh-MFA rule)."""

    username: str
    roles: frozenset[str] = frozenset()
    via: str = "gatectl"  # session | basic | api_key | gatectl (shell access on the server)
    session_id: str | None = None
    ip: str = ""
    otp: str = ""  # a one-time code sent with this request

    @staticmethod
    def calling(principal: Principal, ip: str, otp: str = "") -> Actor:
        return Actor(principal.username or "", principal.roles, principal.via, principal.session_id, ip, otp)


GATECTL = Actor("gatectl")


def require_admin(principal: Principal) -> None:
    """Only admins who owe nothing (a new password, a one-time code) administer users."""
    if not principal.is_admin:
        raise Forbidden("Only admins may do this (users, API keys, doctors and grants are managed by admins)")
    if principal.must_change_password:
        raise Forbidden("Change your password first, at /gate/password")
    if principal.mfa_pending:
        raise Forbidden("Prove your one-time code first, at /gate/mfa")


def user_view(user: User) -> dict[str, Any]:
    return {"username": user.username, "display_name": user.display_name, "email": user.email,
            "roles": sorted(user.role_set), "source": user.source, "disabled": user.disabled,
            "mfa_enabled": user.totp_enabled, MUST_CHANGE: user.must_change_password}


def list_users(store: Store) -> list[dict[str, Any]]:
    with store.read() as db:
        return [user_view(user) for user in accounts.all_users(db)]


def account_states(store: Store, now: float) -> list[dict[str, Any]]:
    """Every account as `list_users` shows it (whether it must choose a new password included), with
    whether it is locked out of signing in (for how long)."""
    with store.read() as db:
        return [_state(db, user, now) for user in accounts.all_users(db)]


def account_state(store: Store, now: float, username: str) -> dict[str, Any]:
    """One account as `account_states` shows it (404 if there is none)."""
    with store.read() as db:
        return _state(db, _existing(db, username), now)


def _state(db: DbSession, user: User, now: float) -> dict[str, Any]:
    keys = account_keys(user.username, user.directory_id)
    wait = max((retry_after(found, now) for found in attempt_rows.load(db, keys).values()), default=0.0)
    return {**user_view(user), "locked_seconds": round(wait)}


def get_user(store: Store, username: str) -> dict[str, Any]:
    with store.read() as db:
        return user_view(_existing(db, username))


def create_user(store: Store, audit: AuditSink, mfa: Mfa | None, actor: Actor, now: float,
                data: dict[str, Any]) -> dict[str, Any]:
    """Create a local account (the API, gatectl and the first admin all come here). A password given
    must be changed at the first sign-in unless `"must_change_password": false` is given too."""
    _known_fields(data, CREATE_FIELDS)
    # Not stripped: a name with spaces or line breaks around it is refused, not silently changed.
    if not isinstance(data.get("username"), str):
        raise BadRequest('"username" must be a non-empty string')
    username = check_username(data["username"])
    roles = _roles(data.get("roles"))
    password = _password(data, username)
    must_change = _must_change(data, password)
    email, display_name = check_email(_text(data, "email")), check_display_name(_text(data, "display_name"))
    if password is not None and ADMIN in roles:
        require_fresh_mfa(store, audit, mfa, actor, now, "user.create")
    password_hash = hash_password(password) if password else None  # slow: not while holding the write lock
    with store.transaction() as db:
        if accounts.user_by_name(db, username) is not None:
            raise Conflict(f"User {username!r} exists already")
        user = accounts.add_user(db, User(
            username=username, roles=",".join(roles), password_hash=password_hash,
            source="local", disabled=False, must_change_password=must_change, display_name=display_name,
            email=email, created_at=now, updated_at=now))
    how = "" if password is None else \
        " and a password to change at first sign-in" if must_change else " and a password it need not change"
    audit(_event(now, actor, "user.create", f"created user {username} with roles {','.join(roles)}{how}",
                 detail=json.dumps({"after": _audited(user)})))
    return user_view(user)


def ensure_first_admin(store: Store, audit: AuditSink, now: float) -> tuple[str, str] | None:
    """Create the first admin with a one-time password if no enabled admin exists."""
    with store.read() as db:
        if accounts.any_admin(db):
            return None
        taken = accounts.user_by_name(db, FIRST_ADMIN) is not None
    username = FIRST_ADMIN if not taken else f"{FIRST_ADMIN}-{secrets.token_hex(3)}"
    password = one_time_password()
    create_user(store, audit, None, GATECTL, now, {"username": username, "roles": [ADMIN], "password": password,
                                                   MUST_CHANGE: True})
    return username, password


def update_user(store: Store, audit: AuditSink, mfa: Mfa | None, actor: Actor, now: float, username: str,
                data: dict[str, Any]) -> dict[str, Any]:
    """Change the fields given (the others stay as they are); audited with before and after."""
    changes = _changes(data, username)
    with store.read() as db:
        user = _existing(db, username)
    _refuse_directory_changes(user, changes)
    privileged = _privileged(user, changes)
    if privileged:
        require_fresh_mfa(store, audit, mfa, actor, now, "user.update")
    password_hash = hash_password(changes["password"]) if "password" in changes else None
    with store.transaction() as db:
        user = _existing(db, username)
        if _privileged(user, changes) and not privileged:
            raise Conflict(f"User {username!r} was changed meanwhile; send the change again")
        before = _audited(user)
        was_admin = _enabled_admin(user)
        ended = _apply(db, user, changes, password_hash, now)
        _keep_an_admin(db, was_admin)
        after = _audited(user)
    changed = [field for field in after if before[field] != after[field]] + (["password"] if password_hash else [])
    if changed:
        detail = {"before": before, "after": after, **({"password_changed": True} if password_hash else {})}
        ended_note = f"; {ended} session(s) ended" if ended else ""
        audit(_event(now, actor, "user.update", f"changed {', '.join(changed)} of {username}{ended_note}",
                     detail=json.dumps(detail)))
    return user_view(user)


def disable_user(store: Store, audit: AuditSink, actor: Actor, now: float, username: str) -> None:
    """Disable the account and end its sessions; the row stays, for the audit trail."""
    with store.transaction() as db:
        user = _existing(db, username)
        was_admin = _enabled_admin(user)
        user.disabled, user.updated_at = True, now
        accounts.revoke_user_sessions(db, user.id, now)
        _keep_an_admin(db, was_admin)
    audit(_event(now, actor, "user.disable", f"disabled {username} and ended their sessions"))


def unlock_user(store: Store, audit: AuditSink, actor: Actor, now: float, username: str) -> bool:
    """Lift the account's sign-in lockout and forget its failed attempts (the caller's address, if
    it is throttled, stays so). True when the account was locked."""
    with store.transaction() as db:
        user = _existing(db, username)
        was_locked = _forget_failures(db, user, now)
    what = "lifted the sign-in lockout of" if was_locked else "cleared the failed sign-ins (no lockout) of"
    audit(_event(now, actor, "user.unlock", f"{what} {username}"))
    return was_locked


def sign_out_everywhere(store: Store, audit: AuditSink, actor: Actor, now: float, username: str) -> None:
    """End every session of the account (its API keys and Basic access are untouched)."""
    with store.transaction() as db:
        user = _existing(db, username)
        accounts.revoke_user_sessions(db, user.id, now)
    audit(_event(now, actor, "user.sign_out_everywhere", f"ended every session of {username}"))


def create_api_key(store: Store, audit: AuditSink, mfa: Mfa | None, actor: Actor, now: float,
                   data: dict[str, Any]) -> dict[str, Any]:
    """A new key for `user` (the caller by default); the key is returned once and kept hashed."""
    _known_fields(data, API_KEY_FIELDS)
    name = _text(data, "name", required=True)
    if len(name) > 128:
        raise BadRequest("An API key needs a name of 1-128 characters")
    username = _text(data, "user") or actor.username
    expires_at = expiry(data, now)
    with store.read() as db:
        _usable(_existing(db, username))
    require_fresh_mfa(store, audit, mfa, actor, now, "api_key.create")
    token = new_token()
    with store.transaction() as db:
        user = _usable(_existing(db, username))
        key = accounts.add_api_key(db, ApiKey(user_id=user.id, name=name, key_hash=token_hash(token), created_at=now,
                                              expires_at=expires_at))
    until = f", until {iso_utc(expires_at)}" if expires_at is not None else ""
    audit(_event(now, actor, "api_key.create", f"API key {key.id} {name!r} for {username}{until}"))
    return {"id": key.id, "name": name, "user": username, "key": token,
            "expires_at": iso_utc(expires_at) if expires_at is not None else None}


def api_keys_of(store: Store, username: str) -> list[dict[str, Any]]:
    """The account's API keys, revoked ones too (never the key itself: only its hash is kept)."""
    with store.read() as db:
        user = _existing(db, username)
        return [{"id": key.id, "name": key.name, "created_at": iso_utc(key.created_at),
                 "expires_at": iso_utc(key.expires_at) if key.expires_at is not None else None,
                 "revoked_at": iso_utc(key.revoked_at) if key.revoked_at is not None else None}
                for key in accounts.api_keys_of(db, user.id)]


def reset_mfa(store: Store, audit: AuditSink, mfa: Mfa | None, actor: Actor, now: float, username: str) -> None:
    """Forget the account's authenticator and recovery codes (it enrols again at its next sign-in)
    and end its sessions. It weakens that account until then: a fresh one-time code of the admin's
    own is needed (gatectl, on the server, needs none)."""
    with store.read() as db:
        _existing(db, username)
    require_fresh_mfa(store, audit, mfa, actor, now, "mfa.reset")
    if mfa is None:
        raise Conflict("One-time codes are not available on this server")
    mfa_service.reset(store, mfa, audit, actor.username, username, now)


def revoke_api_key(store: Store, audit: AuditSink, actor: Actor, now: float, key_id: int) -> None:
    with store.transaction() as db:
        key = accounts.api_key_by_id(db, key_id)
        if key is None:
            raise NotFound(f"No API key {key_id}")
        revoked_now = key.revoked_at is None
        if revoked_now:
            key.revoked_at = now
        owner, name = accounts.user_by_id(db, key.user_id).username, key.name
    if revoked_now:
        audit(_event(now, actor, "api_key.revoke", f"revoked API key {key_id} {name!r} of {owner}"))


def import_users(store: Store, audit: AuditSink, actor: Actor, now: float, text: str, dry_run: bool = False,
                 progress: Progress | None = None) -> int:
    """Create every user of the CSV file, or none (raises BadCsv naming every bad line).

    Imported users are local accounts without a password: an admin sets one, or issues an API key.
    """
    with store.read() as db:
        existing = accounts.usernames(db)
    report = user_import.read_users_csv(text, existing, progress)
    if report.problems:
        if not dry_run:
            audit(_event(now, actor, "users.import", f"refused: {len(report.problems)} lines with errors, "
                         "nothing imported", outcome="failure"))
        raise BadCsv(report.problems)
    if dry_run:
        return len(report.rows)
    with store.transaction() as db:
        taken = accounts.usernames(db) & {row.username for row in report.rows}
        if taken:  # created by someone else since the check above
            raise BadCsv([RowProblem(row.line, (f"User {row.username!r} exists already",))
                          for row in report.rows if row.username in taken])
        for start in range(0, len(report.rows), INSERT_CHUNK):
            accounts.add_users(db, [_imported(row, now) for row in report.rows[start:start + INSERT_CHUNK]])
            if progress is not None:
                progress("importing", min(start + INSERT_CHUNK, len(report.rows)), len(report.rows))
    count = len(report.rows)
    audit(_event(now, actor, "users.import", f"imported {count} users",
                 detail=json.dumps({"usernames": [row.username for row in report.rows]})))
    return count


def require_fresh_mfa(store: Store, audit: AuditSink, mfa: Mfa | None, actor: Actor, now: float,
                      action: str) -> None:
    """Pass if the actor's session proved a one-time code in the last MFA_FRESH_SECONDS, or proves
    one now (the request's "otp", which then counts for the session); raise MfaRequired if not."""
    if actor.via == GATECTL.via:
        return
    if actor.via != "session" or actor.session_id is None:
        raise _mfa_refusal(audit, actor, now, action, "This change needs a one-time code proved in the last "
                            "5 minutes, which only a signed-in session can give: sign in at /gate/login (or use "
                            "gatectl on the server)")
    with store.read() as db:
        proved_at = accounts.session_mfa_at(db, actor.session_id)
        user = accounts.user_by_name(db, actor.username)
    if proved_at is not None and now - proved_at <= MFA_FRESH_SECONDS:
        return
    if not actor.otp:
        raise _mfa_refusal(audit, actor, now, action, 'This change needs a one-time code proved in the last '
                            '5 minutes: send your current code (or a recovery code) as "otp" with the request')
    code = mfa.check(user.id, user.username, actor.otp, now, actor.ip, user.directory_id) \
        if user is not None and mfa is not None \
        else None
    if code is None or not code.ok:
        failure = code.failure if code is not None else WRONG_CODE
        said = failure if failure.endswith(".") else failure + "."
        raise _mfa_refusal(audit, actor, now, action, f'{said} Send your next code as "otp".')
    with store.transaction() as db:
        accounts.mark_session_mfa(db, actor.session_id, now)


# -- helpers -------------------------------------------------------------------------------------


def _event(now: float, actor: Actor, action: str, reason: str, outcome: str = "success",
           detail: str = "") -> AuditRecord:
    return account_event(now, actor.username, action, outcome, reason[:512], actor.ip, ",".join(sorted(actor.roles)),
                         detail)


def _mfa_refusal(audit: AuditSink, actor: Actor, now: float, action: str, message: str) -> MfaRequired:
    audit(_event(now, actor, action, "refused: no fresh one-time code", outcome="failure"))
    return MfaRequired(message)


def _audited(user: User) -> dict[str, Any]:
    """What an audit record shows of an account: never its password."""
    return {"roles": sorted(user.role_set), "email": user.email, "display_name": user.display_name,
            "disabled": user.disabled, MUST_CHANGE: user.must_change_password}


def _existing(db: DbSession, username: str) -> User:
    user = accounts.user_by_name(db, username)
    if user is None:
        raise NotFound(f"No user {username!r}")
    return user


def _usable(user: User) -> User:
    if user.disabled:
        raise Conflict(f"User {user.username!r} is disabled")
    return user


def _privileged(user: User, changes: dict[str, Any]) -> bool:
    """Does this change need a fresh one-time code (see the module's docstring)?"""
    roles = changes.get("roles", sorted(user.role_set))
    return roles != sorted(user.role_set) or ("password" in changes and ADMIN in roles)


def _refuse_directory_changes(user: User, changes: dict[str, Any]) -> None:
    if user.source != "directory":
        return
    current = {"roles": sorted(user.role_set), "email": user.email, "display_name": user.display_name}
    for field in DIRECTORY_FIELDS:
        if field in changes and changes[field] != current.get(field):
            raise Conflict(f"{user.username!r} is a directory account: its {field.replace('_', ' ')} come"
                           f"{'' if field == 'roles' else 's'} from the directory (change it there)")


def _apply(db: DbSession, user: User, changes: dict[str, Any], password_hash: str | None, now: float) -> int:
    """Apply the changes; returns how many of the account's sessions they ended."""
    before_roles = sorted(user.role_set)
    if "roles" in changes:
        user.roles = ",".join(changes["roles"])
    if "email" in changes:
        user.email = changes["email"]
    if "display_name" in changes:
        user.display_name = changes["display_name"]
    if password_hash is not None:
        user.password_hash = password_hash
        user.must_change_password = changes[MUST_CHANGE]
        _forget_failures(db, user, now)  # a new password from an admin lifts a lockout too
    if "disabled" in changes:
        user.disabled = changes["disabled"]
    user.updated_at = now
    if user.disabled or password_hash is not None or sorted(user.role_set) != before_roles:
        # A new password, new roles or a disabled account: whoever holds a session of it signs in again.
        return accounts.revoke_user_sessions(db, user.id, now)
    return 0


def _forget_failures(db: DbSession, user: User, now: float) -> bool:
    """Forget the account's failed sign-ins; True when they had locked it."""
    keys = account_keys(user.username, user.directory_id)
    was_locked = any(retry_after(found, now) > 0 for found in attempt_rows.load(db, keys).values())
    for key in keys:
        attempt_rows.forget(db, key)
    return was_locked


def _enabled_admin(user: User) -> bool:
    return ADMIN in user.role_set and not user.disabled


def _keep_an_admin(db: DbSession, was_admin: bool) -> None:
    """Refuse (and so roll back) a change that took away the last enabled admin, who could undo it."""
    if was_admin and not accounts.any_admin(db):
        raise Conflict("That would leave no enabled admin; make another admin first")


def _imported(row: ImportRow, now: float) -> User:
    return User(username=row.username, roles=",".join(row.roles), password_hash=None, source="local",
                disabled=False, must_change_password=False, display_name=row.display_name, email=row.email,
                created_at=now, updated_at=now)


def _changes(data: dict[str, Any], username: str) -> dict[str, Any]:
    _known_fields(data, CHANGE_FIELDS)
    changes: dict[str, Any] = {}
    if "roles" in data:
        changes["roles"] = _roles(data["roles"])
    if "email" in data:
        changes["email"] = check_email(_text(data, "email"))
    if "display_name" in data:
        changes["display_name"] = check_display_name(_text(data, "display_name"))
    if "disabled" in data:
        if not isinstance(data["disabled"], bool):
            raise BadRequest('"disabled" must be true or false')
        changes["disabled"] = data["disabled"]
    password = _password(data, username)
    if "password" in data and password is None:
        raise BadRequest('"password" must be a string')
    must_change = _must_change(data, password)
    if password is not None:
        changes["password"], changes[MUST_CHANGE] = password, must_change
    return changes


def _known_fields(data: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(data) - allowed - {OTP_FIELD})
    if unknown:
        raise BadRequest(f"Unknown field {unknown[0]!r}; the fields are {', '.join(sorted(allowed))}")


def _text(data: dict[str, Any], name: str, required: bool = False) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadRequest(f'"{name}" must be {"a non-empty" if required else "a"} string')
    return value.strip()


def _roles(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(role, str) for role in value):
        raise BadRequest('"roles" must be a list of role names')
    return check_roles(value)


def _password(data: dict[str, Any], username: str) -> str | None:
    password = data.get("password")
    if password is None:
        return None
    if not isinstance(password, str):
        raise BadRequest('"password" must be a string')
    return check_password(password, username)


def _must_change(data: dict[str, Any], password: str | None) -> bool:
    """Must the account change the password given at its next sign-in? Yes, unless the request
    says `"must_change_password": false`; the flag means nothing without a password."""
    if MUST_CHANGE not in data:
        return password is not None
    if password is None:
        raise BadRequest(f'Send "{MUST_CHANGE}" only with a "password": it says whether that password must be '
                         "changed at the next sign-in.", MUST_CHANGE)
    if not isinstance(data[MUST_CHANGE], bool):
        raise BadRequest(f'Send "{MUST_CHANGE}" as true or false.', MUST_CHANGE)
    return data[MUST_CHANGE]

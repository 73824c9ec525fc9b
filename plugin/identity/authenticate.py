"""Who is calling: session cookie, HTTP Basic or API key -> Principal. Knows nothing of routes.

Every successful identification is cached in memory for a short time (IdentityCacheSeconds) so
a viewer's hundreds of requests cost a dict lookup; verified Basic passwords are remembered under a
keyed hash (never the password) for BasicCredentialCacheSeconds so argon2 runs once, not per
frame. Logouts and revocations on this node drop the entries at once; other nodes sharing the
store see them when their entries expire (IdentityCacheSeconds).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from plugin.identity.attempts import SignInGuard
from plugin.identity.directory import Directory, DirectoryAccount, DirectoryUnavailable
from plugin.identity.mfa import needs_mfa
from plugin.identity.secrets import token_hash, verify_password
from plugin.policies.lockout import failure_message, locked_message
from plugin.policies.roles import roles_for_groups
from plugin.policies.types import ANONYMOUS, Principal
from plugin.store import accounts
from plugin.store.db import Store
from plugin.store.models import User

SESSION_COOKIE = "gate_session"
DIRECTORY = "directory"  # what a remembered password check made against the directory records
BAD_CREDENTIALS = "Wrong username or password"
NO_ROLE = "no role for this directory account (its groups map to none)"
TOUCH_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Identification:
    principal: Principal
    failure: str = ""  # why presented credentials were not accepted ("" when none were presented)
    csrf_token: str | None = None
    valid_until: float = 0.0  # until when this answer may be reused without asking the store
    unavailable: bool = False  # the credentials could not be checked (the directory is down)
    retry_after: float = 0.0  # refused for too many failed sign-ins: seconds to wait


@dataclass(frozen=True)
class CredentialCheck:
    user: User | None  # the account, when the password is right and the account may sign in
    failure: str = ""
    unavailable: bool = False
    retry_after: float = 0.0  # seconds, when refused because of too many failed attempts
    entry_id: str | None = None  # the directory entry the name found, if any


def _locked_out(wait: float) -> CredentialCheck:
    return CredentialCheck(None, locked_message(wait),
                           retry_after=wait)


class TtlCache:
    """A small thread-safe map whose entries expire; bounded by dropping everything when full."""

    def __init__(self, max_entries: int = 10000) -> None:
        self._entries: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: Any, now: float) -> Any:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def put(self, key: Any, value: Any, until: float) -> None:
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (until, value)

    def pop(self, key: Any) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def parse_cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def parse_basic(value: str) -> tuple[str, str] | None:
    """Decode a Basic credential; None when it is not well-formed base64 of `user:password`.

    UTF-8 first (RFC 7617, browsers); bytes that are not UTF-8 are read as Latin-1, which is
    what older clients (and Python's requests) send.
    """
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")
    username, sep, password = decoded.partition(":")
    if not sep or not username or any(ord(c) < 0x20 for c in username):
        return None
    return username, password


class Authenticator:
    def __init__(self, store: Store, identity_cache_seconds: float, basic_cache_seconds: float,
                 session_idle_seconds: float, clock: Callable[[], float] = time.time,
                 directory: Directory | None = None, group_roles: Mapping[str, tuple[str, ...]] | None = None,
                 mfa_required_roles: frozenset[str] = frozenset({"admin"}), guard: SignInGuard | None = None,
                 group_base: str | None = None, directory_recheck_seconds: float = 900.0) -> None:
        self._store = store
        self._guard = guard
        self.mfa_required_roles = mfa_required_roles
        self._directory = directory
        self._group_roles = group_roles or {}
        self._group_base = group_base
        # A directory account not re-read for twice this long (the directory is unreachable, or the
        # re-check could not run) is refused until it is.
        self._stale_after = 2 * directory_recheck_seconds
        self._ttl = identity_cache_seconds
        self._basic_ttl = basic_cache_seconds
        self._idle = session_idle_seconds
        self._clock = clock
        self._cache = TtlCache()
        self._verified_basic = TtlCache()
        self._basic_key = secrets.token_bytes(32)  # per process: cache keys are useless elsewhere
        self.generation = 0  # bumped on every invalidation
        self._on_invalidate: list[Callable[[], None]] = []

    def identify(self, headers: dict[str, str], ip: str = "") -> Identification:
        """Identify the caller from the request headers. Raises StoreUnavailable if it must ask the store."""
        authorization = headers.get("authorization", "")
        if authorization:
            scheme, _, value = authorization.partition(" ")
            scheme = scheme.lower()
            if scheme == "basic":
                return self._basic(value, ip)
            if scheme == "bearer":
                return self._api_key(value.strip())
            return Identification(ANONYMOUS, "unsupported authorization scheme")
        cookie = parse_cookie(headers.get("cookie", ""), SESSION_COOKIE)
        if cookie:
            return self.session(cookie)
        return Identification(ANONYMOUS)

    def subscribe(self, forget: Callable[[], None]) -> None:
        """Call `forget` whenever an identity is invalidated (decision caches drop everything)."""
        self._on_invalidate.append(forget)

    def invalidate(self, cache_key: Any = None) -> None:
        """Forget a cached identity (or all of them) at once, e.g. after a logout or a revocation."""
        if cache_key is None:
            self._cache.clear()
            self._verified_basic.clear()
        else:
            self._cache.pop(cache_key)
        self.generation += 1
        for forget in self._on_invalidate:
            forget()

    # -- the three ways in -------------------------------------------------------------------

    def session(self, token: str) -> Identification:
        now = self._clock()
        session_id = token_hash(token)
        cached = self._cache.get(("session", session_id), now)
        if cached is not None:
            return cached
        with self._store.read() as db:
            found = accounts.session_with_user(db, session_id)
        if found is None:
            return Identification(ANONYMOUS, "unknown session")
        session, user = found
        if session.revoked_at is not None:
            return Identification(ANONYMOUS, "session ended")
        if now >= session.expires_at or now - session.last_seen_at >= self._idle:
            return Identification(ANONYMOUS, "session expired")
        refused = self._refusal(user, now)
        if refused:
            return Identification(ANONYMOUS, refused)
        if now - session.last_seen_at >= TOUCH_EVERY_SECONDS:
            # Idle time is kept to the minute, so a busy viewer costs one write a minute.
            with self._store.transaction() as db:
                accounts.touch_session(db, session_id, now)
            session.last_seen_at = now
        principal = Principal(user.username, user.role_set, "session", user.must_change_password,
                              session_id=session_id,
                              mfa_pending=needs_mfa(user, self.mfa_required_roles) and session.mfa_at is None,
                              mfa_done=session.mfa_at is not None)
        until = min(now + self._ttl, session.expires_at, session.last_seen_at + self._idle)
        result = Identification(principal, csrf_token=session.csrf_token, valid_until=until)
        self._cache.put(("session", session_id), result, until)
        return result

    def _api_key(self, token: str) -> Identification:
        now = self._clock()
        key_hash = token_hash(token)
        cached = self._cache.get(("api_key", key_hash), now)
        if cached is not None:
            return cached
        with self._store.read() as db:
            found = accounts.api_key_owner(db, key_hash)
        if found is None:
            return Identification(ANONYMOUS, "unknown API key")
        key, user = found
        if key.revoked_at is not None:
            return Identification(ANONYMOUS, "API key revoked")
        if key.expires_at is not None and now >= key.expires_at:
            return Identification(ANONYMOUS, "API key expired")
        refused = self._refusal(user, now)
        if refused:
            return Identification(ANONYMOUS, refused)
        principal = Principal(user.username, user.role_set, "api_key", user.must_change_password)
        until = min(now + self._ttl, key.expires_at) if key.expires_at is not None else now + self._ttl
        result = Identification(principal, valid_until=until)
        self._cache.put(("api_key", key_hash), result, until)
        return result

    def _refusal(self, user: User, now: float) -> str:
        """Why an account that was signed in before may not act now ("" when it may)."""
        if user.disabled:
            return "account disabled"
        if user.source == "directory":
            # (A row made before accounts were keyed by entry was never re-read: refused until the
            # re-check has settled it, within a minute.)
            if now - (user.directory_checked_at or 0.0) > self._stale_after:
                return "directory account not re-checked recently (the directory is unreachable)"
            if not user.role_set:
                return NO_ROLE
        return ""

    def _basic(self, value: str, ip: str) -> Identification:
        credentials = parse_basic(value)
        if credentials is None:
            return Identification(ANONYMOUS, "malformed Basic credentials")
        username, password = credentials
        now = self._clock()
        proof = self._proof(username, password)
        user_key = ("basic", username)
        cached = self._cache.get(user_key, now)
        verified = self._verified_basic.get(proof, now)
        if cached is not None and verified is not None:
            return cached
        check = self.check_password(username, password, now, verified, ip)
        if check.user is None:
            return Identification(ANONYMOUS, check.failure, unavailable=check.unavailable,
                                  retry_after=check.retry_after)
        user = check.user
        if needs_mfa(user, self.mfa_required_roles):
            # Basic cannot carry a one-time code: such accounts sign in at /gate/login (or use an API key).
            return Identification(ANONYMOUS, "this account needs a one-time code: sign in at /gate/login, "
                                             "or use an API key")
        principal = Principal(user.username, user.role_set, "basic", user.must_change_password)
        result = Identification(principal, valid_until=now + self._ttl)
        self._cache.put(user_key, result, now + self._ttl)
        return result

    def check_password(self, username: str, password: str, now: float, verified: Any = None,
                       ip: str = "") -> CredentialCheck:
        """Check a username and password against the local account or, for others, the directory.

        A local account is never looked up in the directory, so a directory entry of the same
        name cannot take it over. `verified` is what a recent successful check remembered (the
        local password hash it was made against, or the directory entry): a remembered check is
        only trusted for what it was made against, and is not renewed by use. Failed attempts
        count towards the lockout of the account (however its name was typed, and of the
        directory entry it found) and the throttling of the address (see SignInGuard); so do
        attempts the directory could not answer, against the address.
        """
        guard = self._guard
        if guard is not None and verified is None:
            wait = guard.wait_seconds(username, ip, now)
            if wait > 0:
                return _locked_out(wait)
        check = self._check_password(username, password, now, verified)
        if guard is None or verified is not None:
            return check
        if check.entry_id is not None:
            wait = guard.wait_seconds(username, ip, now, check.entry_id)
            if wait > 0:
                return _locked_out(wait)  # another spelling of this login is locked
        if check.user is None and check.failure == BAD_CREDENTIALS:
            failure = guard.failed(username, ip, now, check.entry_id)
            return CredentialCheck(None, failure_message(BAD_CREDENTIALS, failure), entry_id=check.entry_id)
        elif check.unavailable:
            guard.address_failed(ip, now)
        elif check.user is not None and not check.user.totp_enabled:
            # Complete: no one-time code follows. Otherwise the code, once right, completes it.
            self.sign_in_completed(username, check.entry_id)
        return check

    def sign_in_completed(self, username: str, entry_id: str | None = None) -> None:
        """A whole sign-in succeeded (password, and one-time code when there is one): the account's
        failed attempts are forgotten."""
        if self._guard is not None:
            self._guard.succeeded(username, entry_id)

    def _check_password(self, username: str, password: str, now: float, verified: Any) -> CredentialCheck:
        remembered_entry = verified[1] if isinstance(verified, tuple) and verified[0] == DIRECTORY else None
        with self._store.read() as db:
            user = accounts.user_by_directory_id(db, remembered_entry) if remembered_entry \
                else accounts.user_by_name(db, username)
        entry_id = remembered_entry
        if remembered_entry is None and ((user is not None and user.source == "local") or self._directory is None):
            password_hash = user.password_hash if user is not None else None
            if verified is None or verified != password_hash:
                if not verify_password(password_hash, password) or user is None:
                    return CredentialCheck(None, BAD_CREDENTIALS)
                self._remember(username, password, password_hash, now)
        elif remembered_entry is None:
            try:
                answer = self._directory.authenticate(username, password)
            except DirectoryUnavailable as exc:
                return CredentialCheck(None, str(exc), unavailable=True)
            # One argon2 check whatever the kind of account, so the time a refusal takes does not
            # tell a local account from a directory one or from no account at all.
            verify_password(None, password)
            entry_id = answer.entry_id
            if answer.account is None:
                return CredentialCheck(None, BAD_CREDENTIALS, entry_id=entry_id)
            user = self.save_directory_account(answer.account, now)
            if user is None:
                return CredentialCheck(None, "a local account has this directory account's name; ask an admin",
                                       entry_id=entry_id)
            self._remember(username, password, (DIRECTORY, answer.account.entry_id), now)
        if user is None:
            return CredentialCheck(None, BAD_CREDENTIALS, entry_id=entry_id)
        if user.disabled:
            return CredentialCheck(None, "account disabled", entry_id=entry_id)
        if user.source == "directory" and not user.role_set:
            return CredentialCheck(None, NO_ROLE, entry_id=entry_id)
        return CredentialCheck(user, entry_id=entry_id)

    def save_directory_account(self, account: DirectoryAccount, now: float) -> User | None:
        """The Gate's row of a directory entry, refreshed with what the directory says now."""
        roles = roles_for_groups(account.groups, self._group_roles, self._group_base)
        with self._store.transaction() as db:
            return accounts.upsert_directory_account(db, account.entry_id, account.login, ",".join(sorted(roles)),
                                                     account.email, account.display_name, now)

    def _remember(self, username: str, password: str, verified: str | None, now: float) -> None:
        self._verified_basic.put(self._proof(username, password), verified, now + self._basic_ttl)

    def _proof(self, username: str, password: str) -> bytes:
        """The key a verified password is remembered under: a keyed hash, never the password."""
        return hmac.new(self._basic_key, f"{username}\0{password}".encode(), hashlib.sha256).digest()

"""TOTP second factor (pyotp): enrolment, one-time codes that cannot be replayed, recovery codes.

Secrets are kept encrypted (Fernet, with the Gate's contact-details key). A code is accepted for
the current 30-second step and one step either side (clock drift), and only for a step later than
the last one accepted for that account, so a code, once used, is spent. Recovery codes are ten
random codes shown once at enrolment, kept as SHA-256 hashes, each good for one sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import pyotp
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from plugin.identity.attempts import SignInGuard
from plugin.policies.lockout import failure_message, locked_message
from plugin.store import accounts
from plugin.store.db import Store
from plugin.store.models import User

STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10
WRONG_CODE = "Wrong or already used one-time code"


@dataclass(frozen=True)
class CodeCheck:
    ok: bool
    failure: str = ""
    retry_after: float = 0.0  # seconds, when refused because of too many failed attempts


def needs_mfa(user: User, required_roles: Iterable[str]) -> bool:
    """An account must prove a one-time code if it enrolled, or if one of its roles requires it."""
    return bool(user.totp_enabled or (user.role_set & frozenset(required_roles)))


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def recovery_hash(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


class Mfa:
    def __init__(self, store: Store, key: bytes | Fernet | MultiFernet, issuer: str,
                 guard: SignInGuard | None = None) -> None:
        self._store = store
        # The runtime hands the contact cipher (which may read older keys too); a key is for tests.
        self._fernet = key if isinstance(key, Fernet | MultiFernet) else Fernet(key)
        self._issuer = issuer
        self._guard = guard

    def pending_secret(self, user_id: int) -> tuple[str, str]:
        """The secret being enrolled (made on first call, kept until confirmed) and its otpauth URI."""
        with self._store.transaction() as db:
            user = accounts.user_by_id(db, user_id)
            if user.totp_enabled:
                raise ValueError("already enrolled")
            secret = self._secret(user)
            if secret is None:
                secret = pyotp.random_base32()
                user.totp_secret = self._fernet.encrypt(secret.encode()).decode()
            username = user.username
        return secret, pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=self._issuer)

    def confirm(self, user_id: int, code: str, now: float) -> list[str] | None:
        """Turn on MFA if `code` fits the pending secret; returns the recovery codes (shown once)."""
        if not self.verify_totp(user_id, code, now, enrolling=True):
            return None
        codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
        with self._store.transaction() as db:
            user = accounts.user_by_id(db, user_id)
            user.totp_enabled = True
            accounts.replace_recovery_codes(db, user_id, [recovery_hash(c) for c in codes])
        return [f"{c[:5]}-{c[5:]}" for c in codes]

    def check(self, user_id: int, username: str, code: str, now: float, ip: str = "",
              entry_id: str | None = None) -> CodeCheck:
        """A code proving who signs in (or makes a privileged change), under the same lockout and
        throttling as passwords: refused while the account or the address is locked, and a wrong
        code counts as a failed attempt of both. Success lifts nothing: the caller does that when
        the whole sign-in is complete."""
        if self._guard is not None:
            wait = self._guard.wait_seconds(username, ip, now, entry_id)
            if wait > 0:
                return CodeCheck(False, locked_message(wait), wait)
        if self.verify(user_id, code, now):
            return CodeCheck(True)
        if self._guard is not None:
            return CodeCheck(False, failure_message(WRONG_CODE, self._guard.failed(username, ip, now, entry_id)))
        return CodeCheck(False, WRONG_CODE)

    def verify(self, user_id: int, code: str, now: float) -> bool:
        """A TOTP code or an unused recovery code; either is spent by being accepted."""
        if self.verify_totp(user_id, code, now):
            return True
        with self._store.transaction() as db:
            return accounts.spend_recovery_code(db, user_id, recovery_hash(code), now)

    def verify_totp(self, user_id: int, code: str, now: float, enrolling: bool = False) -> bool:
        code = normalise_code(code)
        if len(code) != 6 or not code.isdigit():
            return False
        with self._store.read() as db:
            user = accounts.user_by_id(db, user_id)
            if user is None or user.totp_enabled == enrolling:
                return False
            secret, last_step = self._secret(user), user.totp_last_step
        if secret is None:
            return False
        totp = pyotp.TOTP(secret)
        current = int(now // STEP_SECONDS)
        for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
            if step > last_step and hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
                # Spend it: only one request can move the step forward past this code.
                with self._store.transaction() as db:
                    return accounts.advance_totp_step(db, user_id, step)
        return False

    def reset(self, user_id: int) -> None:
        with self._store.transaction() as db:
            user = accounts.user_by_id(db, user_id)
            user.totp_secret, user.totp_enabled, user.totp_last_step = None, False, 0
            accounts.replace_recovery_codes(db, user_id, [])

    def _secret(self, user: User) -> str | None:
        if not user.totp_secret:
            return None
        try:
            return self._fernet.decrypt(user.totp_secret.encode()).decode()
        except InvalidToken:
            return None  # encrypted with a key that is gone: the user must be reset

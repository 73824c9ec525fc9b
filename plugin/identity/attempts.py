"""Sign-in lockout and throttling: per account and per source address, kept in the store.

An account's failures are counted under the name as a directory would match it (Unicode
compatibility forms folded, case and surrounding spaces ignored: `RAD1`, ` rad1 ` and fullwidth
`ｒａｄ１` are one count) and, once a directory entry is known, under that entry too, so no spelling
of a login gets attempts of its own. Keys are bounded: a 5,000-character name is kept as its hash.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata

from plugin.policies.lockout import Attempts, Failure, LockoutRule, after_failure, attempts_left, retry_after
from plugin.store import attempts as attempt_rows
from plugin.store.db import Store

MAX_NAME_IN_KEY = 128


def account_key(username: str) -> str:
    name = " ".join(unicodedata.normalize("NFKC", username).casefold().split())
    if len(name) > MAX_NAME_IN_KEY:
        name = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    return f"user:{name}"


def entry_key(entry_id: str) -> str:
    return "entry:" + (entry_id if len(entry_id) <= 256 else hashlib.sha256(entry_id.encode()).hexdigest())


def account_keys(username: str, entry_id: str | None = None) -> list[str]:
    """The keys an account's failures are counted under (its name's, and its directory entry's):
    what forgetting them lifts (an admin's unlock or password reset)."""
    return [account_key(username), *([entry_key(entry_id)] if entry_id else [])]


class SignInGuard:
    def __init__(self, store: Store, account_rule: LockoutRule, address_rule: LockoutRule) -> None:
        self._store = store
        self._account_rule = account_rule
        self._address_rule = address_rule

    @staticmethod
    def _keys(username: str, ip: str, entry_id: str | None = None) -> dict[str, str]:
        keys = {"account": account_key(username)}
        if entry_id:
            keys["entry"] = entry_key(entry_id)
        if ip:
            keys["address"] = f"ip:{ip}"
        return keys

    def wait_seconds(self, username: str, ip: str, now: float, entry_id: str | None = None) -> float:
        """How long this account (or this address) must wait before trying again; 0: go ahead."""
        keys = self._keys(username, ip, entry_id)
        with self._store.read() as db:
            found = attempt_rows.load(db, list(keys.values()))
        return max((retry_after(found[k], now) for k in keys.values() if k in found), default=0.0)

    def failed(self, username: str, ip: str, now: float, entry_id: str | None = None) -> Failure:
        """Count a failed attempt: whether it has just locked the account, and how many are left."""
        return self._count(self._keys(username, ip, entry_id), now)

    def address_failed(self, ip: str, now: float) -> None:
        """Count a failure against the address alone (an attempt that could not be checked)."""
        if ip:
            self._count({"address": f"ip:{ip}"}, now)

    def succeeded(self, username: str, entry_id: str | None = None) -> None:
        with self._store.transaction() as db:
            for key in account_keys(username, entry_id):
                attempt_rows.forget(db, key)

    def _count(self, keys: dict[str, str], now: float) -> Failure:
        rules = {"account": self._account_rule, "entry": self._account_rule, "address": self._address_rule}
        with self._store.transaction() as db:
            found = attempt_rows.load(db, list(keys.values()))
            locked_now = False
            left = self._account_rule.limit
            for kind, key in keys.items():
                before = found.get(key, Attempts(0, now, 0.0))
                after = after_failure(before, now, rules[kind])
                attempt_rows.save(db, key, after)
                if kind != "address":
                    locked_now = locked_now or after.locked_until > max(before.locked_until, now)
                    left = min(left, attempts_left(after, self._account_rule))
            attempt_rows.prune(db, now - max(self._account_rule.window, self._address_rule.window))
        return Failure(locked_now, 0 if locked_now else left, max(1, math.ceil(self._account_rule.lock / 60)))

"""Sign-in lockout and throttling: per account and per source address, kept in the store."""

from __future__ import annotations

from plugin.policies.lockout import Attempts, LockoutRule, after_failure, retry_after
from plugin.store import attempts as attempt_rows
from plugin.store.db import Store


class SignInGuard:
    def __init__(self, store: Store, account_rule: LockoutRule, address_rule: LockoutRule) -> None:
        self._store = store
        self._account_rule = account_rule
        self._address_rule = address_rule

    @staticmethod
    def _keys(username: str, ip: str) -> dict[str, str]:
        keys = {"account": f"user:{username.lower()}"}
        if ip:
            keys["address"] = f"ip:{ip}"
        return keys

    def wait_seconds(self, username: str, ip: str, now: float) -> float:
        """How long this account (or this address) must wait before trying again; 0: go ahead."""
        keys = self._keys(username, ip)
        with self._store.read() as db:
            found = attempt_rows.load(db, list(keys.values()))
        return max((retry_after(found[k], now) for k in keys.values() if k in found), default=0.0)

    def failed(self, username: str, ip: str, now: float) -> bool:
        """Count a failed attempt; True when it has just locked the account."""
        keys = self._keys(username, ip)
        rules = {"account": self._account_rule, "address": self._address_rule}
        with self._store.transaction() as db:
            found = attempt_rows.load(db, list(keys.values()))
            locked_now = False
            for kind, key in keys.items():
                before = found.get(key, Attempts(0, now, 0.0))
                after = after_failure(before, now, rules[kind])
                attempt_rows.save(db, key, after)
                if kind == "account" and after.locked_until > max(before.locked_until, now):
                    locked_now = True
            attempt_rows.prune(db, now - max(self._account_rule.window, self._address_rule.window))
        return locked_now

    def succeeded(self, username: str) -> None:
        with self._store.transaction() as db:
            attempt_rows.forget(db, self._keys(username, "")["account"])

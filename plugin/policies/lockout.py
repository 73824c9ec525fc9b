"""Lockout and throttling of sign-in attempts (pure): count failures in a window, lock past a limit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attempts:
    failures: int = 0
    window_start: float = 0.0
    locked_until: float = 0.0


@dataclass(frozen=True)
class LockoutRule:
    limit: int  # failures within `window` that lock
    window: float  # seconds over which failures are counted
    lock: float  # seconds a lock lasts


def retry_after(attempts: Attempts, now: float) -> float:
    """Seconds until another attempt is accepted (0 when it may be made now)."""
    return max(0.0, attempts.locked_until - now)


def after_failure(attempts: Attempts, now: float, rule: LockoutRule) -> Attempts:
    """The state after one more failed attempt: a new window when the old one is over, a lock at the limit."""
    if now - attempts.window_start >= rule.window:
        attempts = Attempts(0, now, attempts.locked_until)
    failures = attempts.failures + 1
    locked_until = now + rule.lock if failures >= rule.limit else attempts.locked_until
    return Attempts(failures, attempts.window_start, locked_until)

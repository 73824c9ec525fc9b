"""Lockout and throttling of sign-in attempts (pure): count failures in a window, lock past a limit."""

from __future__ import annotations

import math
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


WARN_WHEN_LEFT = 2  # a failed sign-in says how many tries are left from this many on


@dataclass(frozen=True)
class Failure:
    """What one more failed attempt did to a sign-in name: locked it now, or how many tries are left."""

    locked_now: bool
    left: int  # wrong attempts the name may still make before it is locked (0 once locked)
    lock_minutes: int


def attempts_left(attempts: Attempts, rule: LockoutRule) -> int:
    return max(0, rule.limit - attempts.failures)


def failure_message(refusal: str, failure: Failure) -> str:
    """A refused password or code, with what comes next. The same for every name typed: unknown
    names are counted and locked alike, so the text tells nothing of whether an account exists."""
    if failure.locked_now:
        return (f"{refusal}. Too many failed sign-ins: this sign-in name is paused for {failure.lock_minutes} min; "
                "an administrator of the practice can lift that sooner.")
    if 0 < failure.left <= WARN_WHEN_LEFT:
        tries = "1 more wrong try" if failure.left == 1 else f"{failure.left} more wrong tries"
        return f"{refusal}. {tries} and this sign-in name is paused for {failure.lock_minutes} min."
    return refusal


def locked_message(wait_seconds: float) -> str:
    """A sign-in refused unchecked, because the name (or the address) is paused."""
    return (f"Too many failed sign-ins: try again in {max(1, math.ceil(wait_seconds / 60))} min, or ask an "
            "administrator of the practice to unlock the account.")

"""Sign-in lockout and throttling: the pure rule, and the Authenticator with a real store."""

from __future__ import annotations

import pytest

from plugin.identity.attempts import SignInGuard
from plugin.identity.authenticate import Authenticator
from plugin.policies.lockout import Attempts, LockoutRule, after_failure, retry_after
from tests.unit.accounts_support import add_user

RULE = LockoutRule(limit=5, window=900, lock=900)


def test_the_fifth_failure_in_the_window_locks_for_the_lock_time():
    state = Attempts()
    for n in range(4):
        state = after_failure(state, 1000 + n, RULE)
        assert retry_after(state, 1000 + n) == 0
    state = after_failure(state, 1004, RULE)
    assert retry_after(state, 1004) == 900 and retry_after(state, 1904) == 0


def test_failures_outside_the_window_start_a_new_count():
    state = Attempts()
    for n in range(4):
        state = after_failure(state, 1000 + n, RULE)
    state = after_failure(state, 1000 + 901, RULE)
    assert state.failures == 1 and retry_after(state, 1901) == 0


@pytest.fixture
def auth(store, clock, cheap_argon2):
    guard = SignInGuard(store, RULE, LockoutRule(limit=8, window=900, lock=900))
    add_user(store, clock(), "drlock", ["radiologist"], "the right password", audit=lambda e: True, actor="test")
    add_user(store, clock(), "drother", ["radiologist"], "the other password", audit=lambda e: True, actor="test")
    return Authenticator(store, 2.0, 60.0, 1800.0, clock=clock, guard=guard)


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(auth, clock):
    for _ in range(4):
        assert auth.check_password("drlock", "wrong", clock(), ip="10.0.0.1").user is None
    locking = auth.check_password("drlock", "wrong", clock(), ip="10.0.0.1")
    assert "locked" in locking.failure
    refused = auth.check_password("drlock", "the right password", clock(), ip="10.0.0.2")
    assert refused.user is None and refused.retry_after == 900 and "too many" in refused.failure
    clock.advance(900)
    assert auth.check_password("drlock", "the right password", clock(), ip="10.0.0.2").user is not None


def test_a_success_resets_the_account_count(auth, clock):
    for _ in range(4):
        auth.check_password("drlock", "wrong", clock())
    assert auth.check_password("drlock", "the right password", clock()).user is not None
    for _ in range(4):
        auth.check_password("drlock", "wrong", clock())
    assert auth.check_password("drlock", "the right password", clock()).user is not None


def test_an_address_spraying_many_accounts_is_throttled(auth, clock):
    for n in range(8):
        auth.check_password(f"nobody{n}", "guess", clock(), ip="10.6.6.6")
    refused = auth.check_password("drother", "the other password", clock(), ip="10.6.6.6")
    assert refused.user is None and refused.retry_after > 0
    assert auth.check_password("drother", "the other password", clock(), ip="10.0.0.9").user is not None


def test_failures_count_for_unknown_names_too(auth, clock):
    # Same answer and same counting whether or not the account exists.
    for _ in range(5):
        auth.check_password("ghost", "guess", clock(), ip="10.0.0.3")
    assert auth.check_password("ghost", "guess", clock(), ip="10.0.0.4").retry_after > 0

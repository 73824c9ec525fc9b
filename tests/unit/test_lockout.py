"""Sign-in lockout and throttling: the pure rule, and the Authenticator with a real store."""

from __future__ import annotations

import pyotp
import pytest
from cryptography.fernet import Fernet

from plugin.errors import OtpRequired, RateLimited, Unauthenticated
from plugin.identity.attempts import SignInGuard
from plugin.identity.authenticate import Authenticator
from plugin.identity.mfa import Mfa
from plugin.policies.lockout import (
    Attempts,
    Failure,
    LockoutRule,
    after_failure,
    failure_message,
    locked_message,
    retry_after,
)
from plugin.services import accounts
from plugin.store import accounts as account_rows
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
    assert "paused for 15 min" in locking.failure
    refused = auth.check_password("drlock", "the right password", clock(), ip="10.0.0.2")
    assert refused.user is None and refused.retry_after == 900
    assert "Too many failed sign-ins: try again in 15 min" in refused.failure
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


# -- one-time codes count like passwords ---------------------------------------------------------------

@pytest.fixture
def with_codes(store, clock, auth):
    """drlock has one-time codes set up; sign-ins go through services/accounts.sign_in."""
    guard = SignInGuard(store, RULE, LockoutRule(limit=8, window=900, lock=900))
    mfa = Mfa(store, Fernet.generate_key(), "tests", guard)
    with store.read() as db:
        user_id = account_rows.user_by_name(db, "drlock").id
    secret, _ = mfa.pending_secret(user_id)
    clock.advance(-60)
    assert mfa.confirm(user_id, pyotp.TOTP(secret).at(clock()), clock())
    clock.advance(60)
    return mfa, secret


def sign_in(store, auth, mfa, clock, otp, ip="10.0.0.1"):
    return accounts.sign_in(store, lambda e: True, auth, clock(), "drlock", "the right password", ip, 1800, 3600,
                            mfa=mfa,
                            otp=otp)


def test_wrong_codes_with_the_right_password_lock_the_account(store, auth, clock, with_codes):
    mfa, secret = with_codes
    for n in range(4):
        with pytest.raises(Unauthenticated, match="Wrong or already used one-time code"):
            sign_in(store, auth, mfa, clock, f"00000{n}", ip=f"10.0.0.{n}")
    with pytest.raises(Unauthenticated, match="paused for 15 min"):
        sign_in(store, auth, mfa, clock, "000009", ip="10.0.0.9")
    with pytest.raises(RateLimited):  # even the right password with the right code, from anywhere
        sign_in(store, auth, mfa, clock, pyotp.TOTP(secret).at(clock()), ip="10.9.9.9")
    clock.advance(900)
    assert sign_in(store, auth, mfa, clock, pyotp.TOTP(secret).at(clock())).principal.username == "drlock"


def test_the_right_password_alone_does_not_reset_the_count_of_wrong_codes(store, auth, clock, with_codes):
    mfa, secret = with_codes
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            sign_in(store, auth, mfa, clock, "000000")
        with pytest.raises(OtpRequired):
            sign_in(store, auth, mfa, clock, "")  # the right password, no code
    with pytest.raises(Unauthenticated, match="paused for 15 min"):
        sign_in(store, auth, mfa, clock, "000000")


def test_only_a_complete_sign_in_resets_the_count(store, auth, clock, with_codes):
    mfa, secret = with_codes
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            sign_in(store, auth, mfa, clock, "000000")
    assert sign_in(store, auth, mfa, clock, pyotp.TOTP(secret).at(clock())).principal.username == "drlock"
    for _ in range(4):  # from another address (this one keeps its own count)
        with pytest.raises(Unauthenticated):
            sign_in(store, auth, mfa, clock, "000000", ip="10.0.0.2")
    clock.advance(30)
    assert sign_in(store, auth, mfa, clock, pyotp.TOTP(secret).at(clock()), ip="10.0.0.2").principal.username \
        == "drlock"


def test_wrong_codes_count_against_the_address(store, auth, clock, with_codes):
    mfa, _ = with_codes
    for _ in range(4):  # four wrong codes and four wrong passwords: the address's eighth failure
        with pytest.raises(Unauthenticated):
            sign_in(store, auth, mfa, clock, "000000", ip="10.6.6.6")
        auth.check_password("ghost", "guess", clock(), ip="10.6.6.6")
    refused = auth.check_password("drother", "the other password", clock(), ip="10.6.6.6")
    assert refused.user is None and refused.retry_after > 0


@pytest.mark.parametrize(("failure", "said"), [
    (Failure(False, 4, 15), "Wrong username or password"),
    (Failure(False, 3, 15), "Wrong username or password"),
    (Failure(False, 2, 15), "Wrong username or password. 2 more wrong tries and this sign-in name is paused for "
                            "15 min."),
    (Failure(False, 1, 15), "Wrong username or password. 1 more wrong try and this sign-in name is paused for 15 min."),
    (Failure(True, 0, 15), "Wrong username or password. Too many failed sign-ins: this sign-in name is paused for 15 "
                           "min; an administrator of the practice can lift that sooner."),
])
def test_a_failed_sign_in_warns_before_the_lock_and_says_who_can_lift_it(failure, said):
    assert failure_message("Wrong username or password", failure) == said


def test_a_paused_sign_in_says_how_long_and_whom_to_ask():
    assert locked_message(61) == ("Too many failed sign-ins: try again in 2 min, or ask an administrator of the "
                                  "practice to unlock the account.")
    assert "try again in 1 min" in locked_message(0.5)

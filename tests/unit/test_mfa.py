"""identity/mfa.py: enrolment, ±1 step, no replay, recovery codes once, reset; with a real store."""

from __future__ import annotations

import pyotp
import pytest
from cryptography.fernet import Fernet

from plugin.identity.mfa import Mfa, needs_mfa
from plugin.store import accounts as account_rows
from tests.unit.accounts_support import add_user

NOW = 1_700_000_000.0


@pytest.fixture
def mfa(store):
    return Mfa(store, Fernet.generate_key(), "Orthanc Gate tests")


@pytest.fixture
def user_id(store, cheap_argon2):
    user = add_user(store, NOW, "drtotp", ["admin"], "totp password 123", audit=lambda e: True, actor="test")
    return user.id


def code_at(secret: str, when: float) -> str:
    return pyotp.TOTP(secret).at(when)


def enrolled(mfa: Mfa, user_id: int) -> tuple[str, list[str]]:
    secret, uri = mfa.pending_secret(user_id)
    assert uri.startswith("otpauth://totp/") and "drtotp" in uri
    codes = mfa.confirm(user_id, code_at(secret, NOW), NOW)
    assert codes is not None
    return secret, codes


def test_the_pending_secret_survives_a_page_reload(mfa, user_id):
    assert mfa.pending_secret(user_id)[0] == mfa.pending_secret(user_id)[0]


def test_the_secret_is_stored_encrypted(mfa, user_id, store):
    secret, _ = mfa.pending_secret(user_id)
    with store.read() as db:
        assert secret not in account_rows.user_by_id(db, user_id).totp_secret


def test_a_wrong_first_code_does_not_enrol(mfa, user_id):
    secret, _ = mfa.pending_secret(user_id)
    assert mfa.confirm(user_id, "000000" if code_at(secret, NOW) != "000000" else "111111", NOW) is None


def test_enrolment_gives_ten_distinct_recovery_codes(mfa, user_id):
    _, codes = enrolled(mfa, user_id)
    assert len(set(codes)) == 10


def test_a_code_works_within_one_step_of_drift(mfa, user_id):
    secret, _ = enrolled(mfa, user_id)
    assert mfa.verify(user_id, code_at(secret, NOW + 30), NOW)  # the phone runs 30 s ahead


def test_a_code_two_steps_away_is_refused(mfa, user_id):
    secret, _ = enrolled(mfa, user_id)
    later = NOW + 300
    assert not mfa.verify(user_id, code_at(secret, later + 60), later)
    assert not mfa.verify(user_id, code_at(secret, later - 60), later)


def test_a_code_cannot_be_used_twice(mfa, user_id):
    secret, _ = enrolled(mfa, user_id)
    later = NOW + 300
    code = code_at(secret, later)
    assert mfa.verify(user_id, code, later)
    assert not mfa.verify(user_id, code, later)
    assert not mfa.verify(user_id, code_at(secret, later - 30), later)  # an older step is spent too
    assert mfa.verify(user_id, code_at(secret, later + 30), later + 30)


def test_the_enrolment_code_is_spent(mfa, user_id):
    secret, _ = enrolled(mfa, user_id)
    assert not mfa.verify(user_id, code_at(secret, NOW), NOW)


def test_a_recovery_code_works_once(mfa, user_id):
    _, codes = enrolled(mfa, user_id)
    assert mfa.verify(user_id, codes[3].upper().replace("-", " "), NOW + 100)  # typed loosely
    assert not mfa.verify(user_id, codes[3], NOW + 200)
    assert mfa.verify(user_id, codes[4], NOW + 300)


def test_reset_forgets_secret_and_recovery_codes(mfa, user_id, store):
    secret, codes = enrolled(mfa, user_id)
    mfa.reset(user_id)
    assert not mfa.verify(user_id, code_at(secret, NOW + 300), NOW + 300)
    assert not mfa.verify(user_id, codes[0], NOW + 300)
    assert mfa.pending_secret(user_id)[0] != secret


def test_needs_mfa_by_role_or_by_enrolment(store, user_id, mfa):
    with store.read() as db:
        user = account_rows.user_by_id(db, user_id)
    assert needs_mfa(user, {"admin"}) and not needs_mfa(user, set())
    enrolled(mfa, user_id)
    with store.read() as db:
        assert needs_mfa(account_rows.user_by_id(db, user_id), set())

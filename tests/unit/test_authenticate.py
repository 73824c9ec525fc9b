"""Who is calling: Basic, API key (Bearer) and session cookie against a real store, with a fake clock."""

from __future__ import annotations

import base64

import pytest

from plugin.identity import authenticate
from plugin.identity.authenticate import SESSION_COOKIE, Authenticator, parse_basic, parse_cookie
from plugin.services import accounts, users
from tests.unit.accounts_support import add_api_key, add_user, disable
from tests.unit.conftest import T0

pytestmark = pytest.mark.usefixtures("cheap_argon2")

USER, PASSWORD = "drnkosi", "doctor password 123"
IDENTITY_TTL, BASIC_TTL, IDLE, MAX_AGE = 2.0, 60.0, 1800.0, 8 * 3600.0


def audit_sink(events: list):
    def record(event) -> bool:
        events.append(event)
        return True

    return record


@pytest.fixture
def events() -> list:
    return []


@pytest.fixture
def sink(events):
    return audit_sink(events)


@pytest.fixture
def user(store, sink, clock):
    return add_user(store, clock(), USER, ["referring_doctor", "radiologist"], PASSWORD, audit=sink, actor="test")


@pytest.fixture
def auth(store, clock) -> Authenticator:
    return Authenticator(store, IDENTITY_TTL, BASIC_TTL, IDLE, clock=clock)


def basic(username: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def raw_basic(credential: bytes) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(credential).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def cookie(token: str) -> dict[str, str]:
    return {"cookie": f"theme=dark; {SESSION_COOKIE}={token}; lang=en"}


def sign_in(store, sink, clock, max_seconds: float = MAX_AGE) -> accounts.SignIn:
    authenticator = Authenticator(store, 2.0, 60.0, IDLE, clock=clock)
    return accounts.sign_in(store, sink, authenticator, clock(), USER, PASSWORD, "10.0.0.7", IDLE, max_seconds)


@pytest.fixture
def argon2_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = authenticate.verify_password

    def counting(password_hash, password):
        calls.append(1)
        return real(password_hash, password)

    monkeypatch.setattr(authenticate, "verify_password", counting)
    return calls


# -- nothing presented ------------------------------------------------------------------------------


def test_no_credentials_is_anonymous_without_failure(auth):
    found = auth.identify({})
    assert found.principal.is_anonymous and found.failure == ""


def test_unsupported_scheme_is_anonymous_with_a_reason(auth, user):
    found = auth.identify({"authorization": "Digest username=drnkosi"})
    assert found.principal.is_anonymous and "unsupported" in found.failure


# -- Basic --------------------------------------------------------------------------------------------


def test_basic_ok(auth, user):
    found = auth.identify(basic(USER, PASSWORD))
    assert (found.principal.username, found.principal.via) == (USER, "basic")
    assert found.principal.roles == {"referring_doctor", "radiologist"}
    assert found.valid_until == T0 + IDENTITY_TTL


def test_basic_scheme_is_case_insensitive(auth, user):
    headers = {"authorization": basic(USER, PASSWORD)["authorization"].replace("Basic", "BASIC")}
    assert auth.identify(headers).principal.username == USER


def test_basic_wrong_password(auth, user):
    found = auth.identify(basic(USER, "not the password"))
    assert found.principal.is_anonymous and found.failure == "Wrong username or password"


def test_basic_unknown_user_looks_like_a_wrong_password(auth, user):
    found = auth.identify(basic("nobody", PASSWORD))
    assert found.principal.is_anonymous and found.failure == "Wrong username or password"


def test_basic_user_without_local_password_is_refused(auth, store, sink, clock):
    add_user(store, clock(), "ldapuser", ["radiologist"], None, audit=sink, actor="test")
    assert auth.identify(basic("ldapuser", "")).principal.is_anonymous
    assert auth.identify(basic("ldapuser", "anything at all")).principal.is_anonymous


def test_basic_password_may_contain_colons(auth, store, sink, clock):
    add_user(store, clock(), "drbilling", ["billing"], "pass:word:with:colons", audit=sink, actor="test")
    assert auth.identify(basic("drbilling", "pass:word:with:colons")).principal.username == "drbilling"


@pytest.mark.parametrize("headers", [
    {"authorization": "Basic !!!not-base64!!!"},
    {"authorization": "Basic ZHJua29zaQ"},  # "drnkosi" with its padding cut
    raw_basic(b"no-colon-here"),
    raw_basic(b"bad\x01user:password"),  # a control character in the username
    raw_basic(b":password-without-user"),
    {"authorization": "Basic "},
], ids=["not base64", "bad padding", "no colon", "control character", "empty username", "empty"])
def test_basic_malformed_header_is_refused(auth, user, headers):
    found = auth.identify(headers)
    assert found.principal.is_anonymous and found.failure == "malformed Basic credentials"


def test_parse_basic_splits_at_the_first_colon():
    assert parse_basic(base64.b64encode(b"a:b:c").decode()) == ("a", "b:c")


def test_second_basic_identify_does_not_run_argon2(auth, user, argon2_calls):
    auth.identify(basic(USER, PASSWORD))
    auth.identify(basic(USER, PASSWORD))
    assert len(argon2_calls) == 1


def test_verified_basic_password_skips_argon2_after_the_identity_cache_expires(auth, user, clock, argon2_calls):
    auth.identify(basic(USER, PASSWORD))
    clock.advance(IDENTITY_TTL + 1)
    assert auth.identify(basic(USER, PASSWORD)).principal.username == USER
    assert len(argon2_calls) == 1


def test_basic_credential_cache_expires(auth, user, clock, argon2_calls):
    auth.identify(basic(USER, PASSWORD))
    clock.advance(BASIC_TTL)
    assert auth.identify(basic(USER, PASSWORD)).principal.username == USER
    assert len(argon2_calls) == 2


def test_cached_basic_identity_does_not_accept_another_password(auth, user, argon2_calls):
    auth.identify(basic(USER, PASSWORD))
    assert auth.identify(basic(USER, "a different password")).principal.is_anonymous
    assert len(argon2_calls) == 2


def test_failed_basic_is_not_cached(auth, user, argon2_calls):
    auth.identify(basic(USER, "wrong password!"))
    auth.identify(basic(USER, "wrong password!"))
    assert len(argon2_calls) == 2


def test_old_basic_password_stops_working_after_a_password_change(auth, store, sink, clock, user):
    # The verified-password cache may spare argon2 for BasicCredentialCacheSeconds, no longer. The
    # node that serves the change invalidates at once; another node sharing the store (or a change
    # made with gatectl) must still refuse the old password once that time has passed, even from a
    # client that keeps using it.
    assert auth.identify(basic(USER, PASSWORD)).principal.username == USER
    accounts.change_password(store, sink, clock(), USER, PASSWORD, "a brand new password", "10.0.0.7")
    accepted_until = clock()
    for _ in range(int(5 * BASIC_TTL / 30)):
        clock.advance(30)
        if not auth.identify(basic(USER, PASSWORD)).principal.is_anonymous:
            accepted_until = clock()
    assert accepted_until - T0 <= BASIC_TTL


# -- Bearer (API keys) -------------------------------------------------------------------------------------


def test_bearer_ok(auth, store, sink, clock, user):
    token = add_api_key(store, clock(), "viewer", USER, audit=sink, actor="test")
    found = auth.identify(bearer(token))
    assert (found.principal.username, found.principal.via) == (USER, "api_key")
    assert found.principal.roles == {"referring_doctor", "radiologist"}


def test_bearer_stops_at_the_keys_end(auth, store, clock, user):
    token = users.create_api_key(store, lambda e: True, None, users.GATECTL, clock(),
                                 {"name": "course", "user": USER, "expires_at": "2023-11-14T23:13:20Z"})["key"]
    assert auth.identify(bearer(token)).principal.username == USER  # T0 is 22:13:20Z
    assert auth.identify(bearer(token)).valid_until == clock() + IDENTITY_TTL
    clock.advance(3600)
    refused = auth.identify(bearer(token))
    assert refused.principal.is_anonymous and refused.failure == "API key expired"


def test_bearer_unknown(auth, user):
    found = auth.identify(bearer("not-a-key"))
    assert found.principal.is_anonymous and found.failure == "unknown API key"


def test_bearer_key_of_one_user_is_not_another_users(auth, store, sink, clock, user):
    add_user(store, clock(), "root1", ["admin"], "admin password 123", audit=sink, actor="test")
    token = add_api_key(store, clock(), "k", USER, audit=sink, actor="test")
    assert not auth.identify(bearer(token)).principal.is_admin


# -- sessions ----------------------------------------------------------------------------------------------


def test_session_ok(auth, store, sink, clock, user):
    signed = sign_in(store, sink, clock)
    found = auth.identify(cookie(signed.token))
    assert (found.principal.username, found.principal.via) == (USER, "session")
    assert found.csrf_token == signed.csrf_token
    assert found.principal.session_id == signed.principal.session_id


def test_session_id_is_a_hash_not_the_cookie(auth, store, sink, clock, user):
    signed = sign_in(store, sink, clock)
    assert signed.principal.session_id != signed.token and len(signed.principal.session_id) == 64


def test_session_unknown(auth, user):
    found = auth.identify(cookie("forged-session-token"))
    assert found.principal.is_anonymous and found.failure == "unknown session"


def test_authorization_header_wins_over_the_cookie(auth, store, sink, clock, user):
    signed = sign_in(store, sink, clock)
    found = auth.identify({**cookie(signed.token), **basic(USER, "wrong password!")})
    assert found.principal.is_anonymous


def test_session_is_valid_just_before_its_absolute_expiry(auth, store, sink, clock, user):
    signed = sign_in(store, sink, clock, max_seconds=1000)
    clock.advance(999)
    assert auth.identify(cookie(signed.token)).principal.username == USER


def test_session_expires_at_the_absolute_instant(store, sink, clock, user):
    auth = Authenticator(store, IDENTITY_TTL, BASIC_TTL, session_idle_seconds=10_000, clock=clock)
    signed = sign_in(store, sink, clock, max_seconds=1000)
    clock.advance(999)
    assert not auth.identify(cookie(signed.token)).principal.is_anonymous  # cached now, until the expiry
    clock.advance(1)
    found = auth.identify(cookie(signed.token))
    assert found.principal.is_anonymous and found.failure == "session expired"


def test_session_idle_timeout(auth, store, sink, clock, user):
    signed = sign_in(store, sink, clock)
    clock.advance(IDLE)
    found = auth.identify(cookie(signed.token))
    assert found.principal.is_anonymous and found.failure == "session expired"


def test_activity_keeps_a_session_from_idling_out(auth, store, sink, clock, user):
    signed = sign_in(store, sink, clock)
    clock.advance(IDLE - 100)
    assert not auth.identify(cookie(signed.token)).principal.is_anonymous
    clock.advance(IDLE - 100)
    assert not auth.identify(cookie(signed.token)).principal.is_anonymous


def test_cached_session_is_not_used_past_its_idle_deadline(store, sink, clock, user):
    auth = Authenticator(store, identity_cache_seconds=10 * IDLE, basic_cache_seconds=BASIC_TTL,
                         session_idle_seconds=IDLE, clock=clock)
    signed = sign_in(store, sink, clock)
    clock.advance(30)  # under a minute: not written back, so the stored idle deadline stays T0 + IDLE
    assert auth.identify(cookie(signed.token)).valid_until == T0 + IDLE
    clock.advance(IDLE - 30)
    assert auth.identify(cookie(signed.token)).failure == "session expired"


def test_session_after_sign_out_is_refused(auth, store, sink, clock, user):
    signed = sign_in(store, sink, clock)
    accounts.sign_out(store, sink, clock(), signed.principal, "10.0.0.7")
    found = auth.identify(cookie(signed.token))
    assert found.principal.is_anonymous and found.failure == "session ended"


def test_sign_out_with_invalidate_ends_a_cached_session_at_once(auth, store, sink, clock, user):
    signed = sign_in(store, sink, clock)
    assert not auth.identify(cookie(signed.token)).principal.is_anonymous
    accounts.sign_out(store, sink, clock(), signed.principal, "10.0.0.7")
    auth.invalidate(("session", signed.principal.session_id))
    assert auth.identify(cookie(signed.token)).principal.is_anonymous


def test_sign_out_reaches_other_nodes_when_their_cache_expires(auth, store, sink, clock, user):
    signed = sign_in(store, sink, clock)
    auth.identify(cookie(signed.token))
    accounts.sign_out(store, sink, clock(), signed.principal, "10.0.0.7")
    clock.advance(IDENTITY_TTL)
    assert auth.identify(cookie(signed.token)).principal.is_anonymous


def test_parse_cookie_needs_the_exact_name_and_a_value():
    assert parse_cookie(f"x{SESSION_COOKIE}=a; {SESSION_COOKIE}=b", SESSION_COOKIE) == "b"
    assert parse_cookie(f"{SESSION_COOKIE}=", SESSION_COOKIE) is None


# -- disabled users ----------------------------------------------------------------------------------------


def test_disabled_user_is_refused_everywhere(auth, store, sink, clock, user):
    token = add_api_key(store, clock(), "viewer", USER, audit=sink, actor="test")
    signed = sign_in(store, sink, clock)
    disable(store, clock(), USER, audit=sink, actor="admin")
    for headers in (basic(USER, PASSWORD), bearer(token), cookie(signed.token)):
        found = auth.identify(headers)
        assert found.principal.is_anonymous
        assert found.failure in ("account disabled", "session ended")


def test_disable_reaches_a_cached_basic_identity_after_invalidate(auth, store, sink, clock, user, argon2_calls):
    assert auth.identify(basic(USER, PASSWORD)).principal.username == USER
    disable(store, clock(), USER, audit=sink, actor="admin")
    auth.invalidate()
    found = auth.identify(basic(USER, PASSWORD))
    assert found.principal.is_anonymous and found.failure == "account disabled"


def test_disable_reaches_basic_when_the_identity_cache_expires(auth, store, sink, clock, user, argon2_calls):
    auth.identify(basic(USER, PASSWORD))
    disable(store, clock(), USER, audit=sink, actor="admin")
    clock.advance(IDENTITY_TTL)
    assert auth.identify(basic(USER, PASSWORD)).failure == "account disabled"
    assert len(argon2_calls) == 1  # the password was still known good; only the account changed


# -- invalidation ----------------------------------------------------------------------------------------


def test_invalidate_bumps_the_generation(auth):
    assert auth.generation == 0
    auth.invalidate()
    auth.invalidate(("session", "x"))
    assert auth.generation == 2


def test_invalidate_all_forgets_verified_passwords(auth, user, argon2_calls):
    auth.identify(basic(USER, PASSWORD))
    auth.invalidate()
    auth.identify(basic(USER, PASSWORD))
    assert len(argon2_calls) == 2


def test_must_change_password_is_carried_on_the_principal(auth, store, sink, clock):
    add_user(store, clock(), "newrad", ["radiologist"], "one time password", must_change_password=True,
             audit=sink, actor="test")
    assert auth.identify(basic("newrad", "one time password")).principal.must_change_password


def test_accounts_that_need_a_one_time_code_cannot_use_basic(auth, store, sink, clock):
    add_user(store, clock(), "newadmin", ["admin"], "admin password 123", audit=sink, actor="test")
    refused = auth.identify(basic("newadmin", "admin password 123"))
    assert refused.principal.is_anonymous and "one-time code" in refused.failure


def test_basic_credentials_that_are_not_utf8_are_read_as_latin1(auth, store, sink, clock):
    # What older clients and Python's requests send for non-ASCII text.
    add_user(store, clock(), "rene", ["billing"], "p\u00e4ssw\u00f6rd f\u00fcr ren\u00e9", audit=sink, actor="test")
    latin1 = raw_basic("rene:p\u00e4ssw\u00f6rd f\u00fcr ren\u00e9".encode("latin-1"))
    utf8 = raw_basic("rene:p\u00e4ssw\u00f6rd f\u00fcr ren\u00e9".encode())
    assert auth.identify(latin1).principal.username == "rene"
    assert auth.identify(utf8).principal.username == "rene"

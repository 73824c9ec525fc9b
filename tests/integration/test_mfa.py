"""TOTP second factor on a real server with the default rule: admins must use it."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
import requests

from tests.conftest import ADMIN, ADMIN_PASSWORD, Server, start_gate, wait_for_audit


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_gate(tmp_path_factory.mktemp("gate-mfa"), gate={"MfaRequiredRoles": ["admin"]})
    try:
        yield srv
    finally:
        srv.proc.stop()


def login(server: Server, otp: str = "", session: requests.Session | None = None) -> requests.Response:
    return (session or requests).post(server.url("/gate/login"), timeout=10,
                                      json={"username": ADMIN, "password": ADMIN_PASSWORD, "otp": otp})


def code(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


def enrol(server: Server) -> tuple[str, list[str]]:
    """Sign in with the password only, set up the authenticator through the pages, as a person would."""
    session = requests.Session()
    signed = login(server, session=session)
    assert signed.status_code == 200 and signed.json()["mfa_pending"] is True
    assert session.get(server.url("/patients"), timeout=10).status_code == 403
    page = session.get(server.url("/gate/mfa"), timeout=10)
    assert page.status_code == 200 and "<svg" in page.text
    secret = re.search(r'class="secret">([A-Z2-7]+)<', page.text).group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    wrong = session.post(server.url("/gate/mfa"), data={"csrf_token": csrf, "code": "12345x"}, timeout=10)
    assert "does not match" in wrong.text
    done = session.post(server.url("/gate/mfa"), data={"csrf_token": csrf, "code": code(secret)}, timeout=10)
    recovery = re.findall(r"<code>([0-9a-f]{5}-[0-9a-f]{5})</code>", done.text)
    assert len(recovery) == 10
    assert session.get(server.url("/patients"), timeout=10).status_code == 200  # this session proved it
    return secret, recovery


@pytest.fixture(scope="module")
def enrolled(server: Server) -> tuple[str, list[str]]:
    return enrol(server)


def test_admin_over_basic_is_refused_with_a_reason(server: Server):
    assert requests.get(server.url("/patients"), auth=(ADMIN, ADMIN_PASSWORD), timeout=10).status_code == 403
    me = requests.get(server.url("/gate/api/me"), auth=(ADMIN, ADMIN_PASSWORD), timeout=10)
    assert me.status_code == 401 and "one-time code" in me.json()["message"]


def test_admin_without_a_code_reaches_no_admin_route(server: Server, enrolled):
    refused = login(server)
    assert refused.status_code == 401 and refused.json()["error"] == "otp_required"
    assert "gate_session" not in refused.cookies
    for path in ("/patients", "/system", "/tools/now", "/modalities", "/app/explorer.js"):
        assert requests.get(server.url(path), timeout=10).status_code == 403, path


def test_a_code_signs_in_once_and_a_replay_fails(server: Server, enrolled):
    secret, _ = enrolled
    fresh = code(secret, 1)  # the enrolment spent the current step
    session = requests.Session()
    assert login(server, fresh, session).status_code == 200
    assert session.get(server.url("/patients"), timeout=10).status_code == 200
    replay = login(server, fresh)
    assert replay.status_code == 401 and replay.json()["error"] == "unauthenticated"
    assert wait_for_audit(server, "action='login' AND reason='Wrong or already used one-time code'")


def test_a_recovery_code_works_once(server: Server, enrolled):
    _, recovery = enrolled
    session = requests.Session()
    assert login(server, recovery[0], session).status_code == 200
    assert session.get(server.url("/patients"), timeout=10).status_code == 200
    assert login(server, recovery[0]).status_code == 401


def test_api_keys_are_not_asked_for_a_code(server: Server, enrolled):
    assert server.admin("GET", "/patients").status_code == 200


def test_the_login_form_asks_for_the_code(server: Server, enrolled):
    form = requests.post(server.url("/gate/login"), data={"username": ADMIN, "password": ADMIN_PASSWORD},
                         timeout=10, allow_redirects=False)
    assert form.status_code == 200 and "6-digit code" in form.text and 'name="otp"' in form.text


def test_totp_reset_ends_sessions_and_asks_for_enrolment_again(server: Server, enrolled):
    secret, recovery = enrolled
    session = requests.Session()
    assert login(server, recovery[5], session).status_code == 200
    server.proc.gatectl("totp-reset", ADMIN)
    deadline = time.monotonic() + 5  # gatectl is another process: this node sees it within the identity cache time
    while session.get(server.url("/patients"), timeout=10).status_code != 403:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    again = login(server)
    assert again.status_code == 200 and again.json()["mfa_pending"] is True
    enrol(server)  # and the module's later tests would need the new secret: this test runs last


def test_wrong_codes_lock_the_account_like_wrong_passwords(tmp_path):
    """The shipped limits: 5 failures lock the account, whatever failed (password or code)."""
    srv = start_gate(tmp_path, gate={"MfaRequiredRoles": ["admin"], "LockoutFailures": 5,
                                     "SignInFailuresPerAddress": 20})
    try:
        secret, _ = enrol(srv)
        for _ in range(4):
            answer = login(srv, "000000")
            assert answer.status_code == 401 and "one-time code" in answer.json()["message"]
            assert login(srv).json()["error"] == "otp_required"  # the right password alone resets nothing
        locking = login(srv, "000000")
        assert locking.status_code == 401 and "paused for 15 min" in locking.json()["message"]
        refused = login(srv, code(secret, 1))
        assert refused.status_code == 403 and refused.json()["error"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) > 800
        assert wait_for_audit(srv, "action='login' AND outcome='failure' AND reason LIKE '%paused%'")
    finally:
        srv.proc.stop()

"""Sign-in, sessions, sign-out and the first admin's one-time password, on a real Orthanc."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
import requests

from tests.conftest import ADMIN, ADMIN_PASSWORD, DOCTOR, DOCTOR_PASSWORD, Server, start_gate, wait_for_audit
from tests.harness import OrthancProcess


def test_form_sign_in_sets_a_hardened_cookie_and_redirects(server: Server):
    answer = requests.post(server.url("/gate/login"), timeout=10, allow_redirects=False,
                           data={"username": ADMIN, "password": ADMIN_PASSWORD, "next": "/app/explorer.html"})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/app/explorer.html"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("gate_session=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in cookie


def test_sign_in_refuses_redirects_to_other_sites(server: Server):
    answer = requests.post(server.url("/gate/login"), timeout=10, allow_redirects=False,
                           data={"username": ADMIN, "password": ADMIN_PASSWORD, "next": "//evil.example/x"})
    assert answer.headers["Location"] == "/app/explorer.html"


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\\evil.example", "/%2F/evil.example",
                                    "/%0d%0aSet-Cookie:%20planted=1", "/x\r\nSet-Cookie: planted=1"])
def test_sign_in_sends_back_only_to_plain_paths_of_this_server(server: Server, target):
    answer = requests.post(server.url("/gate/login"), timeout=10, allow_redirects=False,
                           data={"username": ADMIN, "password": ADMIN_PASSWORD, "next": target})
    assert answer.status_code == 303 and answer.headers["Location"] == "/app/explorer.html"
    assert "planted" not in answer.headers.get("Set-Cookie", "")


def test_the_sign_in_page_keeps_only_a_plain_next(server: Server):
    page = requests.get(server.url("/gate/login?next=%2F%09%2Fevil.example"), timeout=10)
    assert 'name="next" value="/app/explorer.html"' in page.text
    page = requests.get(server.url("/gate/login?next=%2Fui%2Fapp%2F"), timeout=10)
    assert 'name="next" value="/ui/app/"' in page.text


def test_a_sign_in_posted_from_another_site_is_refused_by_its_referer(server: Server):
    answer = requests.post(server.url("/gate/login"), timeout=10, allow_redirects=False,
                           headers={"Referer": "http://evil.example/phish.html"},
                           data={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert answer.status_code == 400 and "gate_session" not in answer.headers.get("Set-Cookie", "")
    same = requests.post(server.url("/gate/login"), timeout=10, allow_redirects=False,
                         headers={"Referer": server.url("/gate/login")},
                         data={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert same.status_code == 303


def test_wrong_password_is_refused_and_both_outcomes_are_audited(server: Server):
    bad = requests.post(server.url("/gate/login"), json={"username": ADMIN, "password": "nope"}, timeout=10)
    assert bad.status_code == 401
    form = requests.post(server.url("/gate/login"), data={"username": ADMIN, "password": "nope"}, timeout=10)
    assert form.status_code == 200 and "Wrong username or password" in form.text
    good = requests.post(server.url("/gate/login"), json={"username": ADMIN, "password": ADMIN_PASSWORD}, timeout=10)
    assert good.status_code == 200 and good.json()["roles"] == ["admin"]
    assert wait_for_audit(server, "action='login' AND outcome='failure' AND actor=?", (ADMIN,))
    assert wait_for_audit(server, "action='login' AND outcome='success' AND actor=?", (ADMIN,))


def test_each_sign_in_gets_a_new_session_id(server: Server):
    planted = {"gate_session": "attacker-chosen-value"}
    first = requests.post(server.url("/gate/login"), json={"username": ADMIN, "password": ADMIN_PASSWORD},
                          cookies=planted, timeout=10)
    second = requests.post(server.url("/gate/login"), json={"username": ADMIN, "password": ADMIN_PASSWORD},
                           cookies=planted, timeout=10)
    assert first.cookies["gate_session"] not in ("attacker-chosen-value", second.cookies["gate_session"])


def test_a_session_works_on_orthanc_routes_until_sign_out_then_at_once_no_more(server: Server):
    session = requests.Session()
    csrf = session.post(server.url("/gate/login"), json={"username": ADMIN, "password": ADMIN_PASSWORD},
                        timeout=10).json()["csrf_token"]
    cookie = session.cookies["gate_session"]
    assert session.get(server.url("/patients"), timeout=10).status_code == 200
    out = session.post(server.url("/gate/logout"), headers={"X-CSRF-Token": csrf}, timeout=10, allow_redirects=False)
    assert out.status_code == 303
    replay = requests.get(server.url("/patients"), cookies={"gate_session": cookie}, timeout=10)
    assert replay.status_code == 403


def test_sign_out_needs_the_csrf_token(server: Server):
    session = requests.Session()
    session.post(server.url("/gate/login"), json={"username": ADMIN, "password": ADMIN_PASSWORD}, timeout=10)
    forged = session.post(server.url("/gate/logout"), headers={"Origin": "http://evil.example"}, timeout=10)
    assert forged.status_code == 400
    assert session.get(server.url("/patients"), timeout=10).status_code == 200


def test_unknown_or_forged_session_cookie_is_refused(server: Server):
    answer = requests.get(server.url("/patients"), cookies={"gate_session": "x" * 43}, timeout=10)
    assert answer.status_code == 403
    assert wait_for_audit(server, "outcome='deny' AND reason LIKE '%unknown session%'")


def test_first_admin_replaces_the_one_time_password_then_sets_up_mfa(tmp_path):
    proc = OrthancProcess(tmp_path, gate={"DatabaseTimeoutSeconds": 1})  # the shipped rule: admins use MFA
    printed = proc.gatectl("ensure-admin").stdout
    username = re.search(r"username: (\S+)", printed).group(1)
    password = re.search(r"one-time password: (\S+)", printed).group(1)
    assert "exists already" in proc.gatectl("ensure-admin").stdout
    proc.start()
    try:
        session = requests.Session()
        signed = session.post(proc.url("/gate/login"), data={"username": username, "password": password},
                              timeout=10, allow_redirects=False)
        assert signed.headers["Location"] == "/gate/password"
        assert session.get(proc.url("/patients"), timeout=10).status_code == 403
        page = session.get(proc.url("/gate/password"), timeout=10)
        assert 'name="current"' not in page.text  # the one-time password was proved a moment ago
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        changed = session.post(proc.url("/gate/password"), timeout=10, allow_redirects=False,
                               data={"csrf_token": csrf, "new": "a brand new passphrase",
                                     "confirm": "a brand new passphrase"})
        assert changed.headers["Location"] == "/gate/mfa"
        assert session.get(proc.url("/patients"), timeout=10).status_code == 403  # no second factor yet
        enrolment = session.get(proc.url("/gate/mfa"), timeout=10).text
        secret = re.search(r'class="secret">([A-Z2-7]+)<', enrolment).group(1)
        session.post(proc.url("/gate/mfa"), timeout=10, data={"csrf_token": csrf, "code": pyotp.TOTP(secret).now()})
        assert session.get(proc.url("/patients"), timeout=10).status_code == 200
        relogin = requests.post(proc.url("/gate/login"), json={"username": username, "password": password},
                                timeout=10)
        assert relogin.status_code == 401
    finally:
        proc.stop()


def test_disabled_user_is_refused_within_the_identity_cache_time(tmp_path):
    srv = start_gate(tmp_path)
    try:
        assert srv.doctor("GET", "/gate/api/me").status_code == 200
        srv.proc.gatectl("disable-user", "drnkosi")
        # gatectl is another process: this node notices when its cached identity expires
        # (IdentityCacheSeconds, 2 s by default). Poll up to 5 s.
        deadline = time.monotonic() + 5
        while srv.doctor("GET", "/gate/api/me").status_code != 401:
            assert time.monotonic() < deadline, "disabled user still accepted after 5 s"
            time.sleep(0.1)
        assert srv.doctor("GET", "/patients").status_code == 403
    finally:
        srv.proc.stop()


def test_password_and_sign_out_pages_need_a_session(server: Server):
    page = requests.get(server.url("/gate/password"), timeout=10, allow_redirects=False)
    assert page.status_code == 303 and page.headers["Location"].startswith("/gate/login")
    change = requests.post(server.url("/gate/password"), data={"current": "x", "new": "y" * 20}, timeout=10)
    assert change.status_code == 401
    # Basic credentials are not a session: they cannot change a password through the form.
    basic = requests.post(server.url("/gate/password"), auth=(ADMIN, ADMIN_PASSWORD), timeout=10,
                          data={"current": ADMIN_PASSWORD, "new": "another long password"})
    assert basic.status_code == 401
    assert requests.post(server.url("/gate/login"), json={"username": ADMIN, "password": ADMIN_PASSWORD},
                         timeout=10).status_code == 200
    out = requests.post(server.url("/gate/logout"), timeout=10, allow_redirects=False)
    assert out.status_code == 303  # nothing to end; the cookie is cleared all the same
    assert "Max-Age=0" in out.headers["Set-Cookie"]


def test_lockout_survives_a_restart_and_is_audited(tmp_path):
    srv = start_gate(tmp_path, gate={"LockoutFailures": 3, "SignInFailuresPerAddress": 20})
    try:
        said = {}
        for name in (DOCTOR, "nobody-of-this-practice"):
            answers = [requests.post(srv.url("/gate/login"), json={"username": name, "password": "guess"}, timeout=10)
                       for _ in range(3)]
            assert [answer.status_code for answer in answers] == [401, 401, 401]
            said[name] = [answer.json()["message"] for answer in answers]
        # A warning before the lock, whom to ask after it; the same words whether the account exists or not.
        assert said[DOCTOR] == said["nobody-of-this-practice"] == [
            "Wrong username or password. 2 more wrong tries and this sign-in name is paused for 15 min.",
            "Wrong username or password. 1 more wrong try and this sign-in name is paused for 15 min.",
            "Wrong username or password. Too many failed sign-ins: this sign-in name is paused for 15 min; "
            "an administrator of the practice can lift that sooner."]
        locked = requests.post(srv.url("/gate/login"), json={"username": DOCTOR, "password": DOCTOR_PASSWORD},
                               timeout=10)
        assert locked.status_code == 403 and locked.json()["error"] == "rate_limited"
        assert "ask an administrator of the practice to unlock the account" in locked.json()["message"]
        assert 800 < int(locked.headers["Retry-After"]) <= 900
        srv.proc.stop()
        srv.proc.start()
        still = requests.post(srv.url("/gate/login"), json={"username": DOCTOR, "password": DOCTOR_PASSWORD},
                              timeout=10)
        assert still.status_code == 403 and still.json()["error"] == "rate_limited"
        # Basic is locked out too, and says so on our routes.
        basic = requests.get(srv.url("/gate/api/me"), auth=(DOCTOR, DOCTOR_PASSWORD), timeout=10)
        assert basic.status_code == 403 and basic.json()["error"] == "rate_limited"
        assert wait_for_audit(srv, "action='login' AND outcome='failure' AND reason LIKE '%paused%'")
        assert wait_for_audit(srv, "action='login' AND outcome='failure' AND LOWER(reason) LIKE 'too many failed%'")
    finally:
        srv.proc.stop()


def test_an_admin_lifts_a_lockout_by_api_by_password_reset_and_by_gatectl(tmp_path):
    srv = start_gate(tmp_path, gate={"LockoutFailures": 3, "SignInFailuresPerAddress": 100})

    def sign_in(password: str, username: str = "drlocked") -> requests.Response:
        return requests.post(srv.url("/gate/login"), json={"username": username, "password": password}, timeout=10)

    def lock_out(password: str) -> None:
        for _ in range(3):
            assert sign_in("guess").status_code == 401
        refused = sign_in(password)
        assert refused.status_code == 403 and refused.json()["error"] == "rate_limited"

    try:
        srv.proc.create_user("drlocked", ["radiologist"], "the first password 1")
        lock_out("the first password 1")
        # Nobody but an admin lifts it: not the locked user's colleague, not a request without a session.
        assert srv.doctor("POST", "/gate/api/users/drlocked/unlock").status_code == 403
        assert srv.anonymous("POST", "/gate/api/users/drlocked/unlock").status_code in (401, 403)
        assert sign_in("the first password 1").status_code == 403
        lifted = srv.admin("POST", "/gate/api/users/drlocked/unlock")
        assert lifted.status_code == 200 and lifted.json() == {"username": "drlocked", "was_locked": True}
        assert sign_in("the first password 1").status_code == 200
        assert srv.admin("POST", "/gate/api/users/drlocked/unlock").json()["was_locked"] is False
        assert srv.admin("POST", "/gate/api/users/nobody/unlock").status_code == 404

        lock_out("the first password 1")
        assert srv.admin("PUT", "/gate/api/users/drlocked", json={"password": "a reset password 22"}).status_code == 200
        assert sign_in("a reset password 22").status_code == 200  # the reset lifted the lockout

        lock_out("a reset password 22")
        printed = srv.proc.gatectl("unlock", "drlocked").stdout
        assert "drlocked can sign in again" in printed
        assert sign_in("a reset password 22").status_code == 200
        rows = wait_for_audit(srv, "action='user.unlock'")
        assert [(row["actor"], row["reason"]) for row in rows] == [
            (ADMIN, "lifted the sign-in lockout of drlocked"),
            (ADMIN, "cleared the failed sign-ins (no lockout) of drlocked"),
            ("gatectl", "lifted the sign-in lockout of drlocked")]
    finally:
        srv.proc.stop()


def test_a_password_change_signs_out_every_other_session_at_once_and_says_so(server: Server):
    server.proc.create_user("drpass", ["radiologist"], "the first password 1")
    here, elsewhere = requests.Session(), requests.Session()
    csrf = here.post(server.url("/gate/login"), json={"username": "drpass", "password": "the first password 1"},
                     timeout=10).json()["csrf_token"]
    elsewhere.post(server.url("/gate/login"), json={"username": "drpass", "password": "the first password 1"},
                   timeout=10)
    assert elsewhere.get(server.url("/gate/api/me"), timeout=10).status_code == 200
    page = here.post(server.url("/gate/password"), timeout=10, data={
        "csrf_token": csrf, "current": "the first password 1", "new": "the second password 2",
        "confirm": "the second password 2"})
    assert page.status_code == 200 and "signed out everywhere else (1 other session)" in page.text
    assert elsewhere.get(server.url("/gate/api/me"), timeout=10).status_code == 401
    assert here.get(server.url("/gate/api/me"), timeout=10).status_code == 200
    assert wait_for_audit(server, "action='password.change' AND actor='drpass' "
                                  "AND reason='password changed; 1 other session(s) ended'")


def test_the_password_page_asks_for_the_current_password_and_the_new_one_twice(server: Server):
    server.proc.create_user("drtwice", ["radiologist"], "the first password 1")
    browser = requests.Session()
    csrf = browser.post(server.url("/gate/login"), json={"username": "drtwice", "password": "the first password 1"},
                        timeout=10).json()["csrf_token"]
    page = browser.get(server.url("/gate/password"), timeout=10)
    assert 'name="current"' in page.text and 'name="confirm"' in page.text

    def change(**fields: str) -> requests.Response:
        return browser.post(server.url("/gate/password"), data={"csrf_token": csrf, **fields}, timeout=10)

    first, second = "the first password 1", "the second password 2"
    assert "The two new passwords differ" in change(current=first, new=second, confirm=second + "!").text
    assert "The two new passwords differ" in change(current=first, new=second).text  # a form confirms
    assert "The current password is wrong" in change(current="not it at all", new=second, confirm=second).text
    assert "This password is too common" in change(current=first, new="Password1234", confirm="Password1234").text
    # A script sends JSON: the current password it must send, "confirm" it may leave out.
    scripted = browser.post(server.url("/gate/password"), timeout=10,
                            json={"csrf_token": csrf, "current": first, "new": second})
    assert scripted.status_code == 200 and scripted.json() == {"changed": True, "other_sessions_ended": 0}
    mismatch = browser.post(server.url("/gate/password"), timeout=10,
                            json={"csrf_token": csrf, "current": second, "new": "the third password 3", "confirm": "x"})
    assert mismatch.status_code == 400 and "The two new passwords differ" in mismatch.json()["message"]


def test_an_admins_password_reset_signs_the_user_out(server: Server):
    # (New roles end sessions the same way: tests/unit/test_users.py; over the API they need a
    # session admin's fresh one-time code.)
    server.proc.create_user("drreset", ["radiologist"], "the first password 1")
    session = requests.Session()
    assert session.post(server.url("/gate/login"), json={"username": "drreset", "password": "the first password 1"},
                        timeout=10).status_code == 200
    reset = server.admin("PUT", "/gate/api/users/drreset", json={"password": "a reset password 22"})
    assert reset.status_code == 200
    assert session.get(server.url("/gate/api/me"), timeout=10).status_code == 401


def test_behind_a_trusted_proxy_each_client_has_its_own_address(tmp_path):
    srv = start_gate(tmp_path, gate={"TrustedProxies": ["127.0.0.1"], "SignInFailuresPerAddress": 3})
    try:
        def sign_in(client: str, password: str) -> requests.Response:
            return requests.post(srv.url("/gate/login"), json={"username": DOCTOR, "password": password},
                                 headers={"X-Forwarded-For": f"6.6.6.6, {client}"}, timeout=10)

        for _ in range(3):
            assert sign_in("198.51.100.7", "wrong password").status_code == 401
        assert sign_in("198.51.100.7", DOCTOR_PASSWORD).json()["error"] == "rate_limited"
        assert sign_in("198.51.100.8", DOCTOR_PASSWORD).status_code == 200  # everyone else still signs in
        rows = wait_for_audit(srv, "action='login' AND outcome='failure'")
        assert {r["source_ip"] for r in rows} == {"198.51.100.7"}
    finally:
        srv.proc.stop()


def test_without_trusted_proxies_x_forwarded_for_is_ignored(server: Server):
    answer = requests.post(server.url("/gate/login"), json={"username": "nobody-xff", "password": "wrong"},
                           headers={"X-Forwarded-For": "198.51.100.9"}, timeout=10)
    assert answer.status_code == 401
    rows = wait_for_audit(server, "action='login' AND actor='nobody-xff'")
    assert rows and {r["source_ip"] for r in rows} == {"127.0.0.1"}

"""A session that still owes its one-time code or a new password may do nothing but finish
signing in (or sign out): every route of the API is refused to it, whoever the account is."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing

import pytest
import requests

from plugin.handlers.routes import ROUTES
from tests.conftest import ADMIN, ADMIN_PASSWORD, DOCTOR, DOCTOR_PASSWORD, Server, start_gate

SAMPLE_GROUP = {r"([^/]+)": ADMIN, r"([0-9]+)": "1", "(.*)": "anything"}


def api_requests() -> list[tuple[str, str]]:
    """(method, path) for every method of every route under /gate/api/ (and the /gate/ catch-all)."""
    found = []
    for regex, handlers in ROUTES:
        if not regex.startswith("/gate/api/") and regex != "/gate/(.*)":
            continue
        path = regex
        for group, value in SAMPLE_GROUP.items():
            path = path.replace(group, value)
        assert "(" not in path, f"no sample value for a group of {regex}"
        found += [(method, path) for method in handlers]
    return found


API_REQUESTS = api_requests()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_gate(tmp_path_factory.mktemp("gate-half"), gate={"MfaRequiredRoles": ["admin"]})
    try:  # the server is stopped even when the set-up below fails
        with closing(sqlite3.connect(srv.proc.database, timeout=10)) as db, db:
            db.execute("UPDATE users SET must_change_password = 1 WHERE username = ?", (DOCTOR,))
        yield srv
    finally:
        srv.proc.stop()


def signed_in(server: Server, username: str, password: str, owes: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    answer = session.post(server.url("/gate/login"), json={"username": username, "password": password}, timeout=10)
    assert answer.status_code == 200 and answer.json()[owes] is True, answer.text
    return session, answer.json()["csrf_token"]


@pytest.fixture(scope="module")
def owing(server: Server) -> dict[str, tuple[requests.Session, str]]:
    return {"one-time code pending": signed_in(server, ADMIN, ADMIN_PASSWORD, "mfa_pending"),
            "password change pending": signed_in(server, DOCTOR, DOCTOR_PASSWORD, "must_change_password")}


def test_the_table_covers_the_whole_api():
    paths = {path for _, path in API_REQUESTS}
    assert {"/gate/api/me", "/gate/api/check", "/gate/api/users", "/gate/api/grants", "/gate/api/doctors"} <= paths


@pytest.mark.parametrize("owes", ["one-time code pending", "password change pending"])
@pytest.mark.parametrize(("method", "path"), API_REQUESTS, ids=[f"{m} {p}" for m, p in API_REQUESTS])
def test_every_api_route_is_refused_until_signing_in_is_finished(server: Server, owing, owes, method, path):
    session, csrf = owing[owes]
    answer = session.request(method, server.url(path), headers={"X-CSRF-Token": csrf}, json={}, timeout=10)
    assert answer.status_code == 403, (answer.status_code, answer.text[:200])
    assert re.search(r"(?i)finish signing in first", answer.json()["message"]), answer.text


@pytest.mark.parametrize("owes", ["one-time code pending", "password change pending"])
def test_the_check_route_tells_nothing_to_a_half_signed_in_admin(server: Server, owing, owes):
    session, _ = owing[owes]
    answer = session.get(server.url(f"/gate/api/check?user={DOCTOR}&study=1.2.3&level=view_only"), timeout=10)
    assert answer.status_code == 403 and "granted" not in answer.text


def test_basic_with_a_password_change_pending_is_refused_too(server: Server):
    answer = requests.get(server.url("/gate/api/me"), auth=(DOCTOR, DOCTOR_PASSWORD), timeout=10)
    assert answer.status_code == 403 and "/gate/password" in answer.json()["message"]


@pytest.mark.parametrize("owes", ["one-time code pending", "password change pending"])
def test_finishing_and_signing_out_stay_open(server: Server, owing, owes):
    session, csrf = owing[owes]
    page = "/gate/mfa" if owes == "one-time code pending" else "/gate/password"
    assert session.get(server.url(page), timeout=10).status_code == 200
    assert session.get(server.url("/patients"), timeout=10).status_code == 403


def test_a_half_signed_in_session_can_sign_out(server: Server):
    session, csrf = signed_in(server, ADMIN, ADMIN_PASSWORD, "mfa_pending")
    out = session.post(server.url("/gate/logout"), headers={"X-CSRF-Token": csrf}, timeout=10, allow_redirects=False)
    assert out.status_code == 303
    assert session.get(server.url("/gate/mfa"), timeout=10, allow_redirects=False).status_code == 303

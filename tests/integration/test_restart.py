"""Restarting Orthanc with the Gate loaded: an admin's POST /tools/reset and the console's restart
both stop Orthanc cleanly and start it again as the same process (the core's own reset would load
the Python plugin twice, and Orthanc would stop for good). The console asks a fresh one-time code
and offers no restart while the configuration file has an error, naming the key."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing

import pyotp
import pytest
import requests

from tests.conftest import ADMIN, ADMIN_PASSWORD, Server, start_gate, wait_for_audit
from tests.integration.console_support import Browser

RESTART = "/gate/admin/server/restart"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_gate(tmp_path_factory.mktemp("gate-restart"), gate={"MfaRequiredRoles": ["admin"]})
    try:
        yield srv
    finally:
        srv.proc.stop()


def back_up(server: Server, started_before: int, seconds: float = 60.0) -> None:
    """Wait for the restarted Orthanc to have loaded the Gate again and to answer (the old one
    answers for a moment after the restart is asked, then none does)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and starts(server) == started_before:
        assert server.proc.returncode is None, server.proc.log_tail()
        time.sleep(0.2)
    while time.monotonic() < deadline:
        assert server.proc.returncode is None, server.proc.log_tail()
        try:
            if requests.get(server.url("/gate/health"), timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"Orthanc did not come back:\n{server.proc.log_tail()}")


def starts(server: Server) -> int:
    return server.proc.log_text().count("Gate: started;")


def test_an_admins_reset_restarts_orthanc_as_the_same_process(server: Server):
    pid, before = server.proc.pid, starts(server)
    answer = server.admin("POST", "/tools/reset", data="")
    assert answer.status_code == 200 and answer.json() == {}
    back_up(server, before)
    assert server.proc.pid == pid and server.proc.returncode is None
    assert starts(server) == before + 1
    assert server.admin("GET", "/gate/api/me").json()["username"] == ADMIN  # its keys still work
    assert server.anonymous("GET", "/patients").status_code == 403  # and it still gates
    assert wait_for_audit(server, "method = 'POST' AND path = '/tools/reset' AND outcome = 'allow'")


def test_nobody_but_an_admin_resets(server: Server):
    assert server.doctor("POST", "/tools/reset", data="").status_code == 403
    assert server.anonymous("POST", "/tools/reset", data="").status_code in (401, 403)
    assert server.proc.returncode is None


def test_the_console_restarts_after_a_fresh_code_and_not_with_a_bad_configuration(server: Server):
    console = Browser(server, ADMIN, ADMIN_PASSWORD)
    console.enrol()
    totp = pyotp.TOTP(console.secret)
    page = console.get("/gate/admin/server")
    assert "checks clean" in page.text and 'action="/gate/admin/server/restart"' in page.text
    # The code proved at enrolment is fresh for 5 minutes: age it, then a restart needs a new one.
    with closing(sqlite3.connect(server.proc.database, timeout=10)) as db, db:
        db.execute("UPDATE sessions SET mfa_at = mfa_at - 600 WHERE mfa_at IS NOT NULL")
    refused = console.post(RESTART, {"otp": ""})
    assert refused.status_code == 401 or "one-time code" in refused.text
    assert server.proc.returncode is None and requests.get(server.url("/gate/health"), timeout=5).ok
    before = starts(server)
    time.sleep(31 - time.time() % 30)  # the enrolment's code is spent: wait for the next one
    answer = console.post(RESTART, {"otp": totp.now()})
    assert answer.status_code == 200 and "Orthanc is restarting" in answer.text
    back_up(server, before)
    assert starts(server) == before + 1
    assert wait_for_audit(server, "action = 'server.restart' AND actor = ?", (ADMIN,))
    # Still signed in: sessions live in the store.
    assert console.get("/gate/admin/server").status_code == 200

    config = json.loads(server.proc.config_path.read_text())
    config["Gate"]["SessionIdleMinuts"] = 30
    server.proc.config_path.write_text(json.dumps(config))
    page = console.get("/gate/admin/server")
    assert "Gate.SessionIdleMinuts" in page.text and "has errors" in page.text
    assert 'action="/gate/admin/server/restart"' not in page.text
    refused = console.post(RESTART, {"otp": totp.now()})
    assert refused.status_code == 409 and "SessionIdleMinuts" in refused.text
    assert server.proc.returncode is None
    del config["Gate"]["SessionIdleMinuts"]
    server.proc.config_path.write_text(json.dumps(config))

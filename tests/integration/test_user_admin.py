"""The user-administration API and `gatectl import-users` on a real server where admins must use MFA."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing

import pyotp
import pytest
import requests

from tests.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    DOCTOR,
    DOCTOR_PASSWORD,
    Server,
    audit_rows,
    start_gate,
    wait_for_audit,
)
from tests.unit.test_user_import import BAD_LINES, HEADER, thousand_rows

CSV = {"Content-Type": "text/csv"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_gate(tmp_path_factory.mktemp("gate-users"), gate={"MfaRequiredRoles": ["admin"]})
    try:
        yield srv
    finally:
        srv.proc.stop()


class AdminSession:
    """The admin signed in through the pages, with one-time codes set up (which proves a code)."""

    def __init__(self, server: Server) -> None:
        self.server, self.http = server, requests.Session()
        signed = self.http.post(server.url("/gate/login"), json={"username": ADMIN, "password": ADMIN_PASSWORD},
                                timeout=10)
        assert signed.status_code == 200 and signed.json()["mfa_pending"] is True
        self.csrf = signed.json()["csrf_token"]
        page = self.http.get(server.url("/gate/mfa"), timeout=10)
        secret = re.search(r'class="secret">([A-Z2-7]+)<', page.text).group(1)
        done = self.http.post(server.url("/gate/mfa"), timeout=10,
                              json={"csrf_token": self.csrf, "code": pyotp.TOTP(secret).now()})
        assert done.status_code == 200, done.text
        self.recovery_codes = done.json()["recovery_codes"]

    def call(self, method: str, path: str, csrf: bool = True, **kwargs) -> requests.Response:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        return self.http.request(method, self.server.url(path), headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def admin(server: Server) -> AdminSession:
    return AdminSession(server)


def age_mfa_proofs(server: Server, seconds: float) -> None:
    """Make every session's last one-time code `seconds` older (the 5-minute window, without waiting)."""
    with closing(sqlite3.connect(server.proc.database, timeout=10)) as db, db:
        db.execute("UPDATE sessions SET mfa_at = mfa_at - ? WHERE mfa_at IS NOT NULL", (seconds,))


def roles_of(server: Server, username: str) -> list[str]:
    return server.admin("GET", f"/gate/api/users/{username}").json()["roles"]


def test_anonymous_callers_get_401(server: Server):
    for method, path in (("GET", "/gate/api/users"), ("POST", "/gate/api/users/import"),
                         ("PUT", f"/gate/api/users/{DOCTOR}"), ("DELETE", "/gate/api/api-keys/1")):
        answer = server.anonymous(method, path)
        assert answer.status_code == 401 and answer.json()["error"] == "unauthenticated", path


def test_non_admins_get_403(server: Server):
    for method, path in (("GET", "/gate/api/users"), ("GET", f"/gate/api/users/{ADMIN}"),
                         ("POST", "/gate/api/api-keys")):
        answer = server.doctor(method, path, json={"name": "mine"})
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden", path


def test_an_api_key_admin_lists_creates_changes_and_disables_users(server: Server):
    created = server.admin("POST", "/gate/api/users", json={"username": "moyo", "roles": ["billing"],
                                                            "email": "moyo@clinic.example", "display_name": "Sr Moyo"})
    assert created.status_code == 201 and created.json()["roles"] == ["billing"]
    assert server.admin("POST", "/gate/api/users", json={"username": "moyo", "roles": ["billing"]}).status_code == 409
    listed = server.admin("GET", "/gate/api/users").json()["users"]
    assert {"moyo", ADMIN, DOCTOR} <= {u["username"] for u in listed}
    changed = server.admin("PUT", "/gate/api/users/moyo", json={"display_name": "Sister Moyo"})
    assert changed.status_code == 200 and changed.json()["display_name"] == "Sister Moyo"
    assert server.admin("DELETE", "/gate/api/users/moyo").json() == {"disabled": True}
    assert server.admin("GET", "/gate/api/users/moyo").json()["disabled"] is True
    assert server.admin("GET", "/gate/api/users/nobody").status_code == 404
    actions = [r["action"] for r in audit_rows(server, "actor=? AND route_class='account'", (ADMIN,))]
    assert {"user.create", "user.update", "user.disable"} <= set(actions)


def test_an_api_key_admin_cannot_change_roles_or_make_keys(server: Server):
    for method, path, body in (("PUT", f"/gate/api/users/{DOCTOR}", {"roles": ["radiologist"]}),
                               ("POST", "/gate/api/api-keys", {"name": "escalate", "user": ADMIN}),
                               ("POST", "/gate/api/users", {"username": "boss", "roles": ["admin"],
                                                            "password": "a long password 123"})):
        answer = server.admin(method, path, json=body)
        assert answer.status_code == 403 and answer.json()["error"] == "mfa_required", path
        assert "gatectl" in answer.json()["message"]
    assert roles_of(server, DOCTOR) == ["referring_doctor"]


def test_a_session_admin_with_a_fresh_code_changes_roles_audited_before_and_after(server: Server,
                                                                                  admin: AdminSession):
    answer = admin.call("PUT", f"/gate/api/users/{DOCTOR}", json={"roles": ["radiologist", "referring_doctor"]})
    assert answer.status_code == 200, answer.text
    assert server.doctor("GET", "/gate/api/me").json()["roles"] == ["radiologist", "referring_doctor"]
    [event] = audit_rows(server, "action='user.update' AND reason=?", (f"changed roles of {DOCTOR}",))
    detail = json.loads(event["detail"])
    assert detail["before"]["roles"] == ["referring_doctor"]
    assert detail["after"]["roles"] == ["radiologist", "referring_doctor"]
    assert (event["actor"], event["outcome"]) == (ADMIN, "success")


def test_the_state_changes_of_a_session_need_the_csrf_token(server: Server, admin: AdminSession):
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        answer = admin.http.put(server.url(f"/gate/api/users/{DOCTOR}"), json={"roles": ["billing"]},
                                headers=headers, timeout=10)
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    assert admin.call("DELETE", f"/gate/api/users/{DOCTOR}", csrf=False).status_code == 403
    assert roles_of(server, DOCTOR) == ["radiologist", "referring_doctor"]


def test_after_5_minutes_the_session_must_send_an_otp(server: Server, admin: AdminSession):
    age_mfa_proofs(server, 301)
    refused = admin.call("PUT", f"/gate/api/users/{DOCTOR}", json={"roles": ["referring_doctor"]})
    assert refused.status_code == 403 and refused.json()["error"] == "mfa_required"
    assert '"otp"' in refused.json()["message"]
    wrong = admin.call("PUT", f"/gate/api/users/{DOCTOR}", json={"roles": ["referring_doctor"], "otp": "000-000"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "mfa_required"
    proved = admin.call("PUT", f"/gate/api/users/{DOCTOR}",
                        json={"roles": ["referring_doctor"], "otp": admin.recovery_codes[0]})
    assert proved.status_code == 200 and proved.json()["roles"] == ["referring_doctor"]
    again = admin.call("PUT", f"/gate/api/users/{DOCTOR}", json={"roles": ["radiologist"]})
    assert again.status_code == 200  # that code counts for the session for 5 minutes


def test_a_session_admin_makes_a_key_that_stops_at_once_when_revoked(server: Server, admin: AdminSession):
    created = admin.call("POST", "/gate/api/api-keys", json={"name": "ris-sync", "user": DOCTOR})
    assert created.status_code == 201, created.text
    key = created.json()
    assert (key["name"], key["user"]) == ("ris-sync", DOCTOR)
    bearer = {"Authorization": f"Bearer {key['key']}"}
    assert requests.get(server.url("/gate/api/me"), headers=bearer, timeout=10).json()["username"] == DOCTOR
    revoked = server.admin("DELETE", f"/gate/api/api-keys/{key['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert requests.get(server.url("/gate/api/me"), headers=bearer, timeout=10).status_code == 401
    assert server.admin("DELETE", "/gate/api/api-keys/999999").status_code == 404
    assert [r["action"] for r in audit_rows(server, "action LIKE 'api_key.%' AND reason LIKE '%ris-sync%'")] == [
        "api_key.create", "api_key.revoke"]


def test_a_csv_with_3_bad_rows_imports_nothing_and_names_the_lines(server: Server):
    answer = server.admin("POST", "/gate/api/users/import", data=thousand_rows().encode(), headers=CSV)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "bad_csv" and "nothing was imported" in body["message"]
    assert [row["line"] for row in body["rows"]] == list(BAD_LINES)
    names = {u["username"] for u in server.admin("GET", "/gate/api/users").json()["users"]}
    assert not any(name.startswith("user0") for name in names)


def test_the_import_wants_csv_and_can_be_a_dry_run(server: Server):
    small = f"{HEADER}\nmbeki,mbeki@clinic.example,Dr Mbeki,radiologist,MP0123456\nzulu,,,billing|radiographer,\n"
    assert server.admin("POST", "/gate/api/users/import", data=small, headers={"Content-Type": "text/plain"}) \
        .status_code == 400
    dry = server.admin("POST", "/gate/api/users/import", data=small, headers={**CSV, "X-Dry-Run": "1"})
    assert dry.status_code == 200 and dry.json()["would_import"] == 2
    assert server.admin("GET", "/gate/api/users/zulu").status_code == 404
    done = server.admin("POST", "/gate/api/users/import", data=small, headers=CSV)
    assert done.status_code == 200 and done.json()["imported"] == 2
    assert roles_of(server, "zulu") == ["billing", "radiographer"]
    assert audit_rows(server, "action='users.import' AND reason='imported 2 users'")


def test_gatectl_import_users_names_bad_lines_then_imports_a_clean_file(server: Server, tmp_path):
    bad, clean = tmp_path / "bad.csv", tmp_path / "clean.csv"
    bad.write_text(thousand_rows())
    clean.write_text(thousand_rows(()))
    refused = server.proc.gatectl("import-users", str(bad), check=False)
    assert refused.returncode == 1
    assert sorted({int(n) for n in re.findall(r"^line (\d+): ", refused.stderr, re.MULTILINE)}) == list(BAD_LINES)
    assert server.admin("GET", "/gate/api/users/user0002").status_code == 404
    dry = server.proc.gatectl("import-users", str(clean), "--dry-run")
    assert "1000 rows would be imported" in dry.stdout
    done = server.proc.gatectl("import-users", str(clean))
    assert "imported 1000 users" in done.stdout and "importing" in done.stderr  # the progress bar
    assert server.admin("GET", "/gate/api/users/user0002").json()["roles"] == ["billing", "radiologist"]
    assert len(server.admin("GET", "/gate/api/users").json()["users"]) > 1000


def test_an_admin_signs_a_user_out_everywhere_at_once(server: Server):
    doctor = requests.Session()
    signed = doctor.post(server.url("/gate/login"), json={"username": DOCTOR, "password": DOCTOR_PASSWORD},
                         timeout=10)
    assert signed.status_code == 200
    assert doctor.get(server.url("/gate/api/me"), timeout=10).status_code == 200
    refused = server.doctor("DELETE", f"/gate/api/users/{ADMIN}/sessions")  # not an admin
    assert refused.status_code == 403
    done = server.admin("DELETE", f"/gate/api/users/{DOCTOR}/sessions")
    assert done.status_code == 200 and done.json() == {"signed_out": True}
    assert doctor.get(server.url("/gate/api/me"), timeout=10).status_code == 401  # no wait: this node
    assert server.doctor("GET", "/gate/api/me").status_code == 200  # Basic and keys are untouched
    assert wait_for_audit(server, "action='user.sign_out_everywhere'")

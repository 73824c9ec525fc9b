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


# -- passwords set by an admin --------------------------------------------------------------------

GIVEN_PASSWORD = "amber-quarry-lantern-31"
OWN_PASSWORD = "tidal-cedar-window-58"


def basic_me(server: Server, username: str, password: str) -> requests.Response:
    return requests.get(server.url("/gate/api/me"), auth=(username, password), timeout=10)


def created_as(server: Server, username: str) -> dict:
    """What the audit of the account's creation recorded of it."""
    [row] = wait_for_audit(server, "action='user.create' AND reason LIKE ?", (f"created user {username} %",))
    return json.loads(row["detail"])["after"]


def test_a_password_an_admin_sets_is_changed_at_the_first_sign_in(server: Server):
    made = server.admin("POST", "/gate/api/users", json={"username": "drfirst", "roles": ["radiologist"],
                                                         "password": GIVEN_PASSWORD})
    assert made.status_code == 201 and made.json()["must_change_password"] is True
    assert created_as(server, "drfirst")["must_change_password"] is True
    # Basic cannot change a password: it is refused, on our routes and Orthanc's, until it is changed.
    refused = basic_me(server, "drfirst", GIVEN_PASSWORD)
    assert refused.status_code == 403 and "/gate/password" in refused.json()["message"]
    assert requests.get(server.url("/patients"), auth=("drfirst", GIVEN_PASSWORD), timeout=10).status_code == 403

    # Signing in lands on the password page, which does not ask again for the password just proved.
    browser = requests.Session()
    signed = browser.post(server.url("/gate/login"), data={"username": "drfirst", "password": GIVEN_PASSWORD},
                          timeout=10, allow_redirects=False)
    assert signed.status_code == 303 and signed.headers["Location"] == "/gate/password"
    page = browser.get(server.url("/gate/password"), timeout=10)
    assert 'name="current"' not in page.text and 'name="confirm"' in page.text
    assert "Not a common password" in page.text  # the rules are listed
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    def choose(new: str, confirm: str) -> requests.Response:
        return browser.post(server.url("/gate/password"), data={"csrf_token": csrf, "new": new, "confirm": confirm},
                            timeout=10, allow_redirects=False)

    for new, confirm, said in (("aaaaaaaaaaaa", "aaaaaaaaaaaa", "This password repeats a character"),
                               ("Password1234", "Password1234", "This password is too common"),
                               ("drfirst's own password", "drfirst's own password", "contains your username"),
                               (OWN_PASSWORD, OWN_PASSWORD + "!", "The two new passwords differ"),
                               (GIVEN_PASSWORD, GIVEN_PASSWORD, "different from the one you were given")):
        again = choose(new, confirm)
        assert again.status_code == 200 and said in again.text, (new, again.text[:300])
        assert 'name="current"' not in again.text
    done = choose(OWN_PASSWORD, OWN_PASSWORD)
    assert done.status_code == 303 and done.headers["Location"] != "/gate/password"
    assert browser.get(server.url("/gate/api/me"), timeout=10).json()["must_change_password"] is False
    assert basic_me(server, "drfirst", OWN_PASSWORD).status_code == 200
    assert basic_me(server, "drfirst", GIVEN_PASSWORD).status_code == 401
    assert wait_for_audit(server, "action='password.change' AND actor='drfirst' AND reason LIKE "
                                  "'password changed in place of the one to change at first sign-in%'")

    # From now on the password is the user's own: changing it asks for the current one.
    page = browser.get(server.url("/gate/password"), timeout=10)
    assert 'name="current"' in page.text
    wrong = browser.post(server.url("/gate/password"), timeout=10, data={
        "csrf_token": csrf, "current": GIVEN_PASSWORD, "new": "willow-ember-signal-64", "confirm":
        "willow-ember-signal-64"})
    assert wrong.status_code == 200 and "The current password is wrong" in wrong.text


def test_a_service_account_keeps_the_password_set_for_it_when_asked_and_it_is_audited(server: Server):
    made = server.admin("POST", "/gate/api/users", json={"username": "pacsbot", "roles": ["radiologist"],
                                                         "password": GIVEN_PASSWORD, "must_change_password": False})
    assert made.status_code == 201 and made.json()["must_change_password"] is False
    assert basic_me(server, "pacsbot", GIVEN_PASSWORD).status_code == 200  # usable over Basic at once
    assert created_as(server, "pacsbot")["must_change_password"] is False
    # A reset is a password to change unless the request says otherwise, each audited before and after.
    reset = server.admin("PUT", "/gate/api/users/pacsbot", json={"password": "copper-delta-beacon-17"})
    assert reset.status_code == 200 and reset.json()["must_change_password"] is True
    assert basic_me(server, "pacsbot", "copper-delta-beacon-17").status_code == 403
    kept = server.admin("PUT", "/gate/api/users/pacsbot", json={"password": "granite-fable-orchid-23",
                                                                "must_change_password": False})
    assert kept.status_code == 200 and kept.json()["must_change_password"] is False
    assert basic_me(server, "pacsbot", "granite-fable-orchid-23").status_code == 200
    rows = wait_for_audit(server, "action='user.update' AND reason LIKE '%of pacsbot%'", until=lambda r: len(r) >= 2)
    flags = [(d["before"]["must_change_password"], d["after"]["must_change_password"], d["password_changed"])
             for d in (json.loads(row["detail"]) for row in rows)]
    assert flags == [(False, True, True), (True, False, True)]
    # The flag goes with a password, as true or false; a weak password is refused with its reason.
    for body, said in (({"must_change_password": True}, 'only with a "password"'),
                       ({"password": "granite-fable-orchid-24", "must_change_password": "no"}, "true or false"),
                       ({"password": "qwertyuiopasdf"}, "runs along the alphabet, the digits or the keyboard")):
        refused = server.admin("PUT", "/gate/api/users/pacsbot", json=body)
        assert refused.status_code == 400 and said in refused.json()["message"], refused.text


def test_gatectl_makes_a_password_to_change_unless_told_not_to(server: Server):
    printed = server.proc.gatectl("create-user", "drcli", "--role", "radiologist", "--password-stdin",
                                  stdin=GIVEN_PASSWORD + "\n").stdout
    assert "the password must be changed at the first sign-in" in printed
    printed = server.proc.gatectl("create-user", "clibot", "--role", "radiologist", "--password-stdin",
                                  "--no-password-change", stdin=GIVEN_PASSWORD + "\n").stdout
    assert "the password need not be changed" in printed
    assert basic_me(server, "drcli", GIVEN_PASSWORD).status_code == 403
    assert basic_me(server, "clibot", GIVEN_PASSWORD).status_code == 200
    assert created_as(server, "drcli")["must_change_password"] is True
    assert created_as(server, "clibot")["must_change_password"] is False
    no_password = server.proc.gatectl("create-user", "nopass", "--role", "radiologist", "--no-password-change",
                                      check=False)
    assert no_password.returncode == 2 and 'only with a "password"' in no_password.stderr
    weak = server.proc.gatectl("create-user", "weak", "--role", "radiologist", "--password-stdin",
                               stdin="123456789012\n", check=False)
    assert weak.returncode == 2 and "runs along the alphabet" in weak.stderr
    assert server.admin("GET", "/gate/api/users/nopass").status_code == 404

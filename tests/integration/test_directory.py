"""Directory sign-in against a real slapd and a real Orthanc with the Gate."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
import requests

from tests.conftest import ADMIN, ADMIN_PASSWORD, Server, start_gate, wait_for_audit
from tests.ldap_server import PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, LdapServer

BASE = "dc=gate,dc=test"


@dataclass
class Setup:
    gate: Server
    ldap: LdapServer


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    ldap = LdapServer(tmp_path_factory.mktemp("slapd")).start()
    workdir = tmp_path_factory.mktemp("gate-ldap")
    (workdir / "ldap.secret").write_text(SERVICE_PASSWORD + "\n")
    gate_config = {
        # Short caches so a test sees a changed directory within seconds, not a minute.
        "BasicCredentialCacheSeconds": 1,
        "Ldap": {
            "Servers": ["ldap://127.0.0.1:1", ldap.url],  # the first is down: fail over in order
            "BindDn": SERVICE_DN, "BindPasswordFile": str(workdir / "ldap.secret"),
            "UserBase": PEOPLE_DN, "TimeoutSeconds": 2, "GroupBase": f"ou=groups,{BASE}", "RetrySeconds": 1,
            "GroupRoles": {f"cn=Radiologists,ou=groups,{BASE}": "radiologist", "Referrers": "referring_doctor",
                           "PACS Admins": ["admin"]},
        },
    }
    try:
        gate = start_gate(workdir, gate=gate_config)
    except Exception:
        ldap.stop()  # the module's finally below is not reached: stop slapd here, by its PID
        raise
    # A local account that a directory entry of the same name must not take over.
    gate.proc.gatectl("create-user", "admin", "--role", "admin", "--password-stdin", "--no-password-change",
                      stdin="the local account password\n")
    try:
        yield Setup(gate, ldap)
    finally:
        gate.proc.stop()
        ldap.stop()


def me(setup: Setup, username: str, password: str) -> requests.Response:
    return requests.get(setup.gate.url("/gate/api/me"), auth=(username, password), timeout=20)


def login(setup: Setup, username: str, password: str) -> requests.Response:
    return requests.post(setup.gate.url("/gate/login"), json={"username": username, "password": password},
                         timeout=20)


def test_basic_sign_in_gives_the_mapped_role(setup):
    answer = me(setup, "rad1", "rad1 password 123")
    assert answer.status_code == 200
    assert answer.json()["roles"] == ["radiologist"] and answer.json()["via"] == "basic"
    # A role alone opens no patient: the trimmed list is empty, a patient's own route refused.
    listed = requests.get(setup.gate.url("/patients"), auth=("rad1", "rad1 password 123"), timeout=20)
    assert listed.status_code == 200 and listed.json() == []


def test_directory_admin_group_gives_admin(setup):
    assert requests.get(setup.gate.url("/patients"), auth=("adm1", "adm1 password 123"), timeout=20).status_code == 200


def test_login_form_gives_the_mapped_role(setup):
    answer = login(setup, "ref1", "ref1 password 123")
    assert answer.status_code == 200 and answer.json()["roles"] == ["referring_doctor"]


def test_wrong_directory_password_is_refused_and_audited(setup):
    assert me(setup, "rad1", "not the password").status_code == 401
    assert login(setup, "rad1", "not the password").status_code == 401
    assert wait_for_audit(setup.gate, "action='login' AND outcome='failure' AND actor='rad1'")


def test_a_user_in_no_mapped_group_gets_nothing(setup):
    assert me(setup, "nogroup", "nogroup password 123").status_code == 401
    for path in ("/patients", "/app/explorer.js", "/system"):
        answer = requests.get(setup.gate.url(path), auth=("nogroup", "nogroup password 123"), timeout=20)
        assert answer.status_code == 403, path
    refused = login(setup, "nogroup", "nogroup password 123")
    assert refused.status_code == 401
    assert wait_for_audit(setup.gate, "actor='nogroup' AND reason LIKE '%no role%'")


def test_non_ascii_usernames_work(setup):
    answer = me(setup, "züri", "zuri password 123")
    assert answer.status_code == 200 and answer.json()["username"] == "züri"


def test_a_local_account_is_never_taken_over_by_a_directory_entry(setup):
    # The directory has uid=admin too (password "directory admin 123", in an unmapped group).
    assert me(setup, "admin", "directory admin 123").status_code == 401
    assert login(setup, "admin", "directory admin 123").status_code == 401
    local = me(setup, "admin", "the local account password")
    assert local.status_code == 200 and local.json()["roles"] == ["admin"]


@pytest.mark.parametrize("username", ["*", "admin)(uid=*", "*)(|(objectClass=*", "rad1*", "rad*", "rad1)",
                                      "*)(uid=rad1", "rad1\\2a", "(uid=rad1)"])
def test_ldap_injection_matches_no_account(setup, username):
    # With a real account's password: a filter that matched rad1 would let this in.
    for password in ("rad1 password 123", "*"):
        assert me(setup, username, password).status_code == 401
        assert login(setup, username, password).status_code == 401


def test_a_user_moved_to_another_group_gets_the_new_role_at_next_sign_in(setup):
    assert login(setup, "ref1", "ref1 password 123").json()["roles"] == ["referring_doctor"]
    setup.ldap.move_user_to_group("ref1", "Referrers", "Radiologists")
    try:
        assert login(setup, "ref1", "ref1 password 123").json()["roles"] == ["radiologist"]
        # Over Basic, the next sign-in is when the remembered check expires (1 s here).
        deadline = time.monotonic() + 10
        while me(setup, "ref1", "ref1 password 123").json()["roles"] != ["radiologist"]:
            assert time.monotonic() < deadline, "Basic kept the old role"
            time.sleep(0.2)
    finally:
        setup.ldap.move_user_to_group("ref1", "Radiologists", "Referrers")


def test_directory_down_local_admin_still_signs_in_directory_users_get_a_clear_error(setup):
    setup.ldap.stop()
    try:
        time.sleep(1.5)  # let remembered directory checks (1 s) lapse
        assert login(setup, ADMIN, ADMIN_PASSWORD).status_code == 200
        assert requests.get(setup.gate.url("/patients"), auth=(ADMIN, ADMIN_PASSWORD), timeout=20).status_code == 200
        down = login(setup, "rad1", "rad1 password 123")
        assert down.status_code == 503 and down.json()["error"] == "directory_unavailable"
        form = requests.post(setup.gate.url("/gate/login"), data={"username": "rad1", "password": "x"}, timeout=20)
        assert form.status_code == 503 and "directory is unavailable" in form.text
        assert me(setup, "adm1", "adm1 password 123").status_code == 503
        assert requests.get(setup.gate.url("/patients"), auth=("adm1", "adm1 password 123"),
                            timeout=20).status_code == 403
        assert wait_for_audit(setup.gate, "actor='rad1' AND action='login' AND reason LIKE 'directory unavailable%'")
        assert wait_for_audit(setup.gate, "outcome='deny' AND reason LIKE '%directory unavailable%'")
    finally:
        setup.ldap.start()
    # A server that failed is skipped for RetrySeconds (1 s here), then tried again.
    deadline = time.monotonic() + 10
    while me(setup, "rad1", "rad1 password 123").status_code != 200:
        assert time.monotonic() < deadline, "the directory was not tried again"
        time.sleep(0.2)

"""Directory accounts against a real slapd and a real Orthanc with the Gate: one account per
directory entry whatever the spelling (MFA, disabling, lockout), leavers losing sessions and keys,
groups matched only where configured, and a hung directory that cannot stall Orthanc."""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
import requests

from tests.conftest import Server, start_gate, wait_for_audit
from tests.ldap_server import GROUPS_DN, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, LdapServer

BASE = "dc=gate,dc=test"
RECHECK_SECONDS = 2
SPELLINGS = {"rad1": ["rad1", "RAD1", "Rad1", " rad1", "rad1 ", "ｒａｄ１"],
             "adm1": ["adm1", "adM1", "ADM1", " adm1", "ａｄｍ１"],
             "ref1": ["ref1", "REF1", "ref1 ", "ｒｅｆ１"]}


@dataclass
class Setup:
    gate: Server
    ldap: LdapServer


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    ldap = LdapServer(tmp_path_factory.mktemp("slapd-accounts")).start()
    gate = None
    try:
        gate = started_gate(tmp_path_factory, ldap)
        yield Setup(gate, ldap)
    finally:
        if gate is not None:
            gate.proc.stop()
        ldap.stop()


def started_gate(tmp_path_factory: pytest.TempPathFactory, ldap: LdapServer) -> Server:
    # A branch a delegated admin may create, with groups named like the mapped ones.
    ldap.add(f"dn: ou=projects,{BASE}\nobjectClass: organizationalUnit\nou: projects\n\n"
             f"dn: cn=PACS Admins,ou=projects,{BASE}\nobjectClass: groupOfNames\ncn: PACS Admins\n"
             f"member: uid=nogroup,{PEOPLE_DN}\n")
    workdir = tmp_path_factory.mktemp("gate-accounts")
    (workdir / "ldap.secret").write_text(SERVICE_PASSWORD + "\n")
    gate = start_gate(workdir, gate={
        "MfaRequiredRoles": ["admin"], "LockoutFailures": 5, "SignInFailuresPerAddress": 100000,
        "BasicCredentialCacheSeconds": 1,
        "Ldap": {"Servers": [ldap.url], "BindDn": SERVICE_DN, "BindPasswordFile": str(workdir / "ldap.secret"),
                 "UserBase": PEOPLE_DN, "GroupBase": GROUPS_DN, "TimeoutSeconds": 2, "RetrySeconds": 1,
                 "MaxConcurrent": 4, "RecheckSeconds": RECHECK_SECONDS,
                 # An entry can be named by its uid or its mail: two logins, one account.
                 "UserFilter": "(&(objectClass=inetOrgPerson)(|(uid={username})(mail={username})))",
                 "GroupRoles": {"Radiologists": "radiologist", "Referrers": "referring_doctor",
                                "PACS Admins": "admin"}}})
    return gate


def basic(username: str, password: str) -> dict[str, str]:
    """Basic credentials as UTF-8 (RFC 7617; requests would send Latin-1 and fail on ｒａｄ１)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def me(setup: Setup, username: str, password: str) -> requests.Response:
    return requests.get(setup.gate.url("/gate/api/me"), headers=basic(username, password), timeout=30)


def login(setup: Setup, username: str, password: str, otp: str = "",
          session: requests.Session | None = None) -> requests.Response:
    return (session or requests).post(setup.gate.url("/gate/login"), timeout=30,
                                      json={"username": username, "password": password, "otp": otp})


def directory_rows(setup: Setup) -> list[dict]:
    return [u for u in setup.gate.admin("GET", "/gate/api/users").json()["users"] if u["source"] == "directory"]


def add_person(setup: Setup, uid: str, group: str) -> None:
    setup.ldap.add(f"dn: uid={uid},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
                   f"userPassword: {uid} password 123\n")
    setup.ldap.add_member(group, uid)


# -- 1. one account per directory entry -------------------------------------------------------------

def test_every_spelling_of_a_login_is_one_account(setup):
    for spelling in SPELLINGS["rad1"]:
        answer = me(setup, spelling, "rad1 password 123")
        assert answer.status_code == 200, (spelling, answer.text)
        assert answer.json()["username"] == "rad1" and answer.json()["roles"] == ["radiologist"]
    assert [u["username"] for u in directory_rows(setup)].count("rad1") == 1
    assert not any(u["username"] != "rad1" and "rad1" in u["username"].lower() for u in directory_rows(setup))


def test_a_directory_admins_password_alone_never_gives_an_admin_session(setup):
    session = requests.Session()
    first = login(setup, "adm1", "adm1 password 123", session=session)
    assert first.status_code == 200 and first.json()["mfa_pending"] is True
    page = session.get(setup.gate.url("/gate/mfa"), timeout=10)
    secret = re.search(r'class="secret">([A-Z2-7]+)<', page.text).group(1)
    done = session.post(setup.gate.url("/gate/mfa"), timeout=10,
                        json={"csrf_token": first.json()["csrf_token"], "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    for spelling in SPELLINGS["adm1"]:
        answer = login(setup, spelling, "adm1 password 123")
        assert answer.status_code == 401 and answer.json()["error"] == "otp_required", (spelling, answer.text)
    good = login(setup, "ADM1", "adm1 password 123", otp=pyotp.TOTP(secret).at(time.time() + 30))
    assert good.status_code == 200 and good.json()["username"] == "adm1" and not good.json()["mfa_pending"]


def test_disabling_the_account_refuses_every_spelling(setup):
    assert me(setup, "ref1", "ref1 password 123").status_code == 200
    assert setup.gate.admin("DELETE", "/gate/api/users/ref1").status_code == 200
    try:
        time.sleep(1.2)  # the remembered Basic check (1 s here)
        for spelling in SPELLINGS["ref1"]:
            assert me(setup, spelling, "ref1 password 123").status_code == 401, spelling
            assert login(setup, spelling, "ref1 password 123").status_code == 401, spelling
    finally:
        assert setup.gate.admin("PUT", "/gate/api/users/ref1", json={"disabled": False}).status_code == 200


def test_failures_in_every_spelling_count_towards_one_lock(setup):
    add_person(setup, "lock1", "Radiologists")
    for spelling in ("lock1", "LOCK1", " lock1", "ｌｏｃｋ１", "Lock1"):
        assert login(setup, spelling, "not the password").status_code == 401
    locked = login(setup, "lock1", "lock1 password 123")
    assert locked.status_code == 403 and locked.json()["error"] == "rate_limited"


def test_the_entry_is_locked_whichever_of_its_names_failed(setup):
    """Failures under the entry's mail lock the entry: its uid, never typed wrong, is refused too."""
    add_person(setup, "lock2", "Radiologists")
    setup.ldap.modify(f"dn: uid=lock2,{PEOPLE_DN}\nchangetype: modify\nadd: mail\nmail: lock2@gate.test\n")
    assert login(setup, "lock2@gate.test", "lock2 password 123").json()["username"] == "lock2"
    for _ in range(5):
        assert login(setup, "lock2@gate.test", "not the password").status_code == 401
    locked = login(setup, "lock2", "lock2 password 123")
    assert locked.status_code == 403 and locked.json()["error"] == "rate_limited"


# -- 2. leavers lose sessions and keys within the bound ----------------------------------------------

def wait_refused(check, limit: float) -> float:
    start = time.monotonic()
    while check():
        assert time.monotonic() - start < limit, "still let in"
        time.sleep(0.1)
    return time.monotonic() - start


@pytest.mark.parametrize("how", ["removed from the group", "deleted"])
def test_a_leaver_loses_sessions_and_api_keys_within_the_bound(setup, how):
    uid = "leaver1" if how == "deleted" else "leaver2"
    add_person(setup, uid, "Radiologists")
    session = requests.Session()
    assert login(setup, uid, f"{uid} password 123", session=session).status_code == 200
    key = setup.gate.proc.gatectl("create-api-key", "viewer", "--user", uid).stdout.strip().splitlines()[-1]
    bearer = {"Authorization": f"Bearer {key}"}
    assert session.get(setup.gate.url("/gate/api/me"), timeout=10).status_code == 200
    assert requests.get(setup.gate.url("/gate/api/me"), headers=bearer, timeout=10).status_code == 200
    if how == "deleted":
        setup.ldap.remove_member("Radiologists", uid)
        setup.ldap.delete(f"uid={uid},{PEOPLE_DN}")
    else:
        setup.ldap.remove_member("Radiologists", uid)
    # RecheckSeconds + the sweep's interval (RecheckSeconds / 2) + IdentityCacheSeconds (2 s): 5 s.
    bound = RECHECK_SECONDS * 1.5 + 2
    took = wait_refused(lambda: session.get(setup.gate.url("/gate/api/me"), timeout=10).status_code == 200,
                        bound + 2)
    took_key = wait_refused(lambda: requests.get(setup.gate.url("/gate/api/me"), headers=bearer,
                                                 timeout=10).status_code == 200, bound + 2)
    print(f"{how}: session refused after {took:.1f} s, API key after {took_key:.1f} s (bound {bound:.0f} s)")
    assert wait_for_audit(setup.gate, "action='user.recheck' AND reason LIKE ?", (f"{uid} %ended",))


# -- 3. groups are matched where they are configured ---------------------------------------------------

def test_a_same_named_group_in_another_branch_gives_no_role(setup):
    # nogroup is in cn=PACS Admins,ou=projects (and in the unmapped Cleaners): no role, no admin.
    assert me(setup, "nogroup", "nogroup password 123").status_code == 401
    assert login(setup, "nogroup", "nogroup password 123").status_code == 401


def test_keys_that_can_match_no_group_are_named_at_start(tmp_path):
    srv = start_gate(tmp_path, gate={"Ldap": {"Servers": ["ldap://127.0.0.1:1"], "UserBase": PEOPLE_DN,
                                              "GroupRoles": {"cn=radiologists": "radiologist",
                                                             "Referrers": "referring_doctor"}}})
    try:
        log = srv.proc.log_text()
        assert "'cn=radiologists' can match no group" in log
        assert "'referrers' can match no group" in log and "GroupBase" in log
    finally:
        srv.proc.stop()


# -- 4. a hung directory does not stall Orthanc ---------------------------------------------------------

def test_a_hung_directory_does_not_hold_up_a_local_admins_download(setup):
    sample = sorted((Path(__file__).resolve().parents[1] / "dicom-samples").glob("*.dcm"))[0]
    instance = setup.gate.admin("POST", "/instances", data=sample.read_bytes()).json()["ID"]
    ended: list[tuple[float, int, str]] = []

    def directory_sign_in(n: int) -> None:
        answer = requests.get(setup.gate.url("/gate/api/me"), headers=basic(f"made-up-{n}", "guess"), timeout=60)
        ended.append((time.monotonic(), answer.status_code, answer.json().get("message", "")))

    setup.ldap.pause()
    try:
        time.sleep(1.2)  # any remembered directory check lapses, and the server is not known down yet
        threads = [threading.Thread(target=directory_sign_in, args=(n,)) for n in range(60)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(0.3)  # they are all waiting on (or refused by) the directory now
        download = setup.gate.admin("GET", f"/instances/{instance}/file")  # a local admin's API key
        downloaded = time.monotonic()
        for thread in threads:
            thread.join()
    finally:
        setup.ldap.resume()
    assert download.status_code == 200
    # Held: waited on the hung directory until the timeout. The others were refused at once, as the
    # directory was busy (MaxConcurrent waiting already) or known to be down.
    held = [t for t, _status, message in ended if "busy" not in message and "skipped" not in message]
    print(f"local admin's download done {1000 * (downloaded - started - 0.3):.0f} ms after it was asked, with "
          f"60 directory sign-ins under way; {len(held)} waited on the hung directory (the first gave up "
          f"after {min(held) - started:.1f} s), {len(ended) - len(held)} were refused at once")
    assert {status for _, status, _m in ended} == {503}
    assert held and downloaded < min(held)  # done before any held sign-in gave up
    assert len(held) <= 4  # MaxConcurrent: the directory holds at most this many HTTP threads

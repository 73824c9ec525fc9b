"""The admin console (/gate/admin/) on a real server where admins must use MFA: who gets in (an
admin whose session proved a one-time code, in a browser) and who gets nothing, each page's
actions through the same services as the API, and the POPIA reports from the real audit."""

from __future__ import annotations

import csv
import io
import re
import time

import pytest
import requests

from tests.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    DOCTOR,
    DOCTOR_PASSWORD,
    Server,
    audit_rows,
    load_samples,
    start_gate,
    wait_for_audit,
)
from tests.integration.console_support import Browser

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PETER = "98890234"  # pydicom's DICOMDIR set: Doe^Peter has four studies
THANDI, ANNA = "GATE-P001", "GATE-P002"  # tests/dicom-samples: one study each
THANDI_STUDY, ANNA_STUDY = "1.2.826.0.1.3680043.10.1192.1", "1.2.826.0.1.3680043.10.1192.2"
# Secrets in Orthanc's own keys, which the server page must not show (the Gate's are in key files).
CONFIG_SECRETS = {"RegisteredUsers": {"alice": "registered-user-secret-1"},
                  "OrthancPeers": {"other": ["http://127.0.0.1:9/", "peer", "peer-secret-2"]},
                  "DicomWeb": {"Enable": True, "Servers": {"remote": {
                      "Url": "http://127.0.0.1:9/dicom-web/", "Username": "u", "Password": "dicomweb-secret-3",
                      "HttpHeaders": {"Authorization": "Bearer hdr-4"}}}}}
# Every console page a GET opens, with what a page of it must show to an admin.
PAGES = {"/gate/admin/": "Arrivals and storage", "/gate/admin/users": "New local user",
         f"/gate/admin/users/{DOCTOR}": "Reset two-step sign-in", "/gate/admin/import": "Import users from CSV",
         "/gate/admin/doctors": "Register a doctor", "/gate/admin/grants": "Grants in force",
         "/gate/admin/grants/study": "Who can see a study", "/gate/admin/shares": "share links",
         "/gate/admin/review": "Referrals to review", "/gate/admin/audit": "Export these as CSV",
         "/gate/admin/audit/patient": "Who opened a patient", "/gate/admin/audit/breach": "Which patients",
         "/gate/admin/audit/verify": "The chain is intact", "/gate/admin/server": "Effective configuration"}
# Every console form, posted by those who may not (the body would be a harmless one for an admin).
FORMS = ("/gate/admin/users", f"/gate/admin/users/{DOCTOR}/disable", "/gate/admin/import", "/gate/admin/doctors",
         "/gate/admin/doctors/1", "/gate/admin/doctors/1/sign-in", "/gate/admin/grants/bulk",
         "/gate/admin/grants/1/revoke", "/gate/admin/shares/1/revoke", "/gate/admin/review/1/resolve")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    # The shipped lockout (5 failures), which one test here meets on purpose.
    srv = start_gate(tmp_path_factory.mktemp("gate-console"),
                     gate={"MfaRequiredRoles": ["admin"], "LockoutFailures": 5}, extra=CONFIG_SECRETS)
    srv.proc.create_user("admin2", ["admin"], "second admin password 9")
    try:
        load_samples(srv)
        yield srv
    finally:
        srv.proc.stop()


@pytest.fixture(scope="module")
def lax_server(tmp_path_factory: pytest.TempPathFactory):
    """A server whose admins are not made to use one-time codes (MfaRequiredRoles without admin)."""
    srv = start_gate(tmp_path_factory.mktemp("gate-console-lax"), gate={"MfaRequiredRoles": []})
    try:
        yield srv
    finally:
        srv.proc.stop()


@pytest.fixture(scope="module")
def admin(server: Server) -> Browser:
    browser = Browser(server, ADMIN, ADMIN_PASSWORD)
    browser.enrol()
    return browser


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# -- who gets in ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(PAGES))
def test_an_admin_with_a_code_proved_opens_every_page(admin: Browser, path: str):
    answer = admin.get(path)
    assert answer.status_code == 200, answer.text[:300]
    assert PAGES[path] in text_of(answer.text)
    assert f"Signed in as {ADMIN}" in text_of(answer.text)
    assert 'action="/gate/logout"' in answer.text


@pytest.mark.parametrize("path", sorted(PAGES))
def test_an_admin_page_answers_json_to_a_script_that_asks(admin: Browser, path: str):
    answer = admin.get(path, headers={"Accept": "application/json"})
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("path", sorted(PAGES))
def test_a_doctor_gets_nothing_of_any_page(server: Server, path: str):
    doctor = Browser(server, DOCTOR, DOCTOR_PASSWORD)
    answer = doctor.get(path)
    assert answer.status_code == 403
    assert "Only administrators" in answer.text
    assert PAGES[path] not in text_of(answer.text)
    assert PETER not in answer.text and THANDI not in answer.text


@pytest.mark.parametrize("path", sorted(PAGES))
def test_an_admin_still_to_set_up_codes_is_sent_to_do_so(server: Server, path: str):
    enrolling = Browser(server, "admin2", "second admin password 9")
    assert enrolling.secret  # signed in with the password; the one-time code is still owed
    answer = enrolling.get(path)
    assert answer.status_code == 303 and answer.headers["Location"] == "/gate/mfa"
    assert PAGES[path] not in text_of(answer.text)


@pytest.mark.parametrize("path", sorted(PAGES))
def test_an_admin_who_proved_no_code_gets_nothing_of_any_page(lax_server: Server, path: str):
    """Where admins may sign in with a password alone, the console still wants a one-time code."""
    admin = Browser(lax_server, ADMIN, ADMIN_PASSWORD)
    answer = admin.get(path)
    assert answer.status_code == 403 and "needs a two-step sign-in" in text_of(answer.text)
    assert PAGES[path] not in text_of(answer.text)


@pytest.mark.parametrize("path", sorted(PAGES))
def test_callers_not_in_a_browser_session_get_nothing(server: Server, path: str):
    with_key = server.admin("GET", path, allow_redirects=False)
    assert with_key.status_code == 403 and "JSON API" in with_key.text
    anonymous = server.anonymous("GET", path)
    assert anonymous.status_code == 303 and anonymous.headers["Location"].startswith("/gate/login?next=")
    for answer in (with_key, anonymous):
        assert PAGES[path] not in text_of(answer.text) and PETER not in answer.text


@pytest.mark.parametrize("path", FORMS)
def test_no_form_takes_a_post_from_a_doctor_or_a_key_or_nobody(server: Server, path: str):
    doctor = Browser(server, DOCTOR, DOCTOR_PASSWORD)
    assert doctor.post(path, {"username": "mallory", "role_admin": "1"}).status_code == 403
    assert server.admin("POST", path, data={"username": "mallory"}, allow_redirects=False).status_code == 403
    assert server.anonymous("POST", path, data={"username": "mallory"}).status_code in (303, 401)
    assert server.admin("GET", "/gate/api/users/mallory").status_code == 404


def test_a_form_without_the_session_token_is_refused(admin: Browser):
    answer = admin.http.post(admin.server.url("/gate/admin/doctors"), data={"hpcsa_number": "MP0000001",
                                                                           "last_name": "Forged"},
                             timeout=10, allow_redirects=False)
    assert answer.status_code == 400 and "stale" in answer.text
    assert admin.server.admin("GET", "/gate/api/doctors?q=Forged").json()["doctors"] == []


# -- users ----------------------------------------------------------------------------------------

def test_an_admin_creates_a_user_and_unlocks_a_locked_one(server: Server, admin: Browser):
    made = admin.follow(admin.post("/gate/admin/users", {"username": "nurse1", "role_radiographer": "1",
                                                         "password": "wandering-heron-422"}))
    assert "The account was created" in made.text and "radiographer" in made.text
    for _ in range(5):
        requests.post(server.url("/gate/login"), json={"username": "nurse1", "password": "wrong password 1"},
                      timeout=10)
    listed = admin.get("/gate/admin/users")
    assert re.search(r"nurse1</a>.*?locked out", listed.text, re.S)
    lifted = admin.follow(admin.post("/gate/admin/users/nurse1/unlock"))
    assert "The sign-in lockout is lifted" in lifted.text and "locked out" not in lifted.text
    assert wait_for_audit(server, "action = 'user.unlock' AND reason LIKE '%nurse1%' AND actor = ?", (ADMIN,))


def test_a_bad_user_form_says_why_and_keeps_what_was_typed(admin: Browser):
    answer = admin.post("/gate/admin/users", {"username": "bad name", "display_name": "Kept Name"})
    assert answer.status_code == 200
    assert 'role="alert"' in answer.text and "Kept Name" in answer.text


def test_a_csv_dry_run_writes_nothing_and_the_import_does(server: Server, admin: Browser):
    text = "username,email,display_name,roles\ncsv1,csv1@example.org,Csv One,billing\n"
    checked = admin.post("/gate/admin/import", {"csv": text, "mode": "check"})
    assert "1 accounts would be imported" in checked.text
    assert server.admin("GET", "/gate/api/users/csv1").status_code == 404
    imported = admin.post("/gate/admin/import", {"csv": text, "mode": "import"})
    assert "1 accounts imported" in imported.text
    assert server.admin("GET", "/gate/api/users/csv1").json()["roles"] == ["billing"]
    bad = admin.post("/gate/admin/import", {"csv": "username,email\nx,y\n", "mode": "check"})
    assert 'id="problems"' in bad.text


def test_an_api_key_made_on_the_page_is_shown_once_and_works(server: Server, admin: Browser):
    made = admin.post(f"/gate/admin/users/{DOCTOR}/api-key", {"name": "viewer script"})
    key = re.search(r'<pre class="config">([A-Za-z0-9_-]{40,})</pre>', made.text).group(1)
    assert requests.get(server.url("/gate/api/me"), headers={"Authorization": f"Bearer {key}"},
                        timeout=10).json()["username"] == DOCTOR
    page = admin.get(f"/gate/admin/users/{DOCTOR}")
    assert key not in page.text and "viewer script" in page.text


# -- doctors ----------------------------------------------------------------------------------------

def test_a_bad_hpcsa_number_is_shown_beside_its_field_then_a_good_one_registers(server: Server, admin: Browser):
    bad = admin.post("/gate/admin/doctors", {"hpcsa_number": "12345", "last_name": "Mokoena", "mobile": "0825551234"})
    assert bad.status_code == 200
    field = re.search(r'<input name="hpcsa_number"[^>]*aria-invalid="true"[^>]*>\s*<span class="field-error"'
                      r'[^>]*>([^<]+)<', bad.text)
    assert field and "not an HPCSA registration number" in field.group(1)
    assert 'value="Mokoena"' in bad.text  # what was typed stays
    bad_mobile = admin.post("/gate/admin/doctors", {"hpcsa_number": "MP0654321", "last_name": "Mokoena",
                                                    "mobile": "011 555 1234"})
    assert re.search(r'name="mobile"[^>]*aria-invalid="true"', bad_mobile.text)
    good = admin.follow(admin.post("/gate/admin/doctors", {"hpcsa_number": "mp0654321", "first_name": "Lerato",
                                                           "last_name": "Mokoena", "mobile": "082 555 1234",
                                                           "email": "lerato@example.org"}))
    assert "The doctor is registered" in good.text and "MP0654321" in good.text and "+27825551234" in good.text
    doctor_id = re.search(r'action="/gate/admin/doctors/([0-9]+)/sign-in"', good.text).group(1)
    login = admin.follow(admin.post(f"/gate/admin/doctors/{doctor_id}/sign-in", {"username": "drmokoena"}))
    assert "welcome e-mail" in login.text and "Signs in as" in login.text
    user = server.admin("GET", "/gate/api/users/drmokoena").json()
    assert user["roles"] == ["referring_doctor"] and user["email"] == "lerato@example.org"


# -- grants ---------------------------------------------------------------------------------------

def test_studies_found_by_search_are_granted_in_bulk_and_one_revoked(server: Server, admin: Browser):
    found = admin.get("/gate/admin/grants", params={"patient_id": PETER})
    uids = re.findall(r'name="(pick_[0-9]+)" value="([0-9.]+)"', found.text)
    assert len(uids) == 4
    picked = dict(uids[:3])
    granted = admin.follow(admin.post("/gate/admin/grants/bulk", {**picked, "patient_id": PETER,
                                                                  "subject": f"user:{DOCTOR}", "level": "view_only"}))
    assert "Grants written: 3" in granted.text
    mine = server.admin("GET", f"/gate/api/grants?user={DOCTOR}").json()["grants"]
    assert sorted(g["study_uid"] for g in mine if g["study_uid"] in picked.values()) == sorted(picked.values())
    first = next(g for g in mine if g["study_uid"] == list(picked.values())[0])
    who = admin.get("/gate/admin/grants/study", params={"study": first["study_uid"]})
    assert DOCTOR in who.text and str(first["id"]) in who.text
    revoked = admin.follow(admin.post(f"/gate/admin/grants/{first['id']}/revoke",
                                      {"back": f"/gate/admin/grants?user={DOCTOR}"}))
    assert "The grant is revoked" in revoked.text
    live = {g["study_uid"] for g in server.admin("GET", f"/gate/api/grants?user={DOCTOR}").json()["grants"]}
    assert live & set(picked.values()) == set(picked.values()) - {first["study_uid"]}
    doctor_sees = server.doctor("GET", f"/studies/{first['orthanc_id']}")
    assert doctor_sees.status_code in (403, 404)


def test_a_grant_needs_a_subject_and_a_ticked_study(admin: Browser):
    answer = admin.post("/gate/admin/grants/bulk", {"subject": f"user:{DOCTOR}", "level": "view_only"})
    assert answer.status_code == 400 and "Tick at least one study" in answer.text


# -- audit ------------------------------------------------------------------------------------------

def test_the_patient_access_report_lists_exactly_two_doctors_and_a_share(server: Server, admin: Browser):
    """Thandi's study opened by two doctors (each through a grant) and by her share link; Anna's by
    one of them: Thandi's report has exactly her three accesses, with times, and nothing of Anna."""
    for name in ("drone", "drtwo"):
        server.proc.create_user(name, ["referring_doctor"], "correct horse battery 9")
    thandi = server.admin("POST", "/tools/lookup", data=THANDI_STUDY).json()[0]["ID"]
    anna = server.admin("POST", "/tools/lookup", data=ANNA_STUDY).json()[0]["ID"]
    for name, uid in (("drone", THANDI_STUDY), ("drtwo", THANDI_STUDY), ("drone", ANNA_STUDY)):
        granted = server.admin("POST", "/gate/api/grants", json={"user": name, "study_uid": uid, "level": "view_only"})
        assert granted.status_code == 201
    before = time.time()
    for name in ("drone", "drtwo"):
        opened = requests.get(server.url(f"/studies/{thandi}"), auth=(name, "correct horse battery 9"), timeout=10)
        assert opened.status_code == 200
    assert requests.get(server.url(f"/studies/{anna}"), auth=("drone", "correct horse battery 9"),
                        timeout=10).status_code == 200
    share = server.admin("POST", "/gate/api/shares", json={"studies": [THANDI_STUDY],
                                                           "valid_hours": 24})
    assert share.status_code == 201, share.text
    patient = requests.Session()
    assert patient.get(share.json()["url"].replace("http://localhost:8042", server.proc.base), timeout=10,
                       ).status_code == 200
    wait_for_audit(server, "actor = ? AND outcome = 'success' AND action LIKE 'share.%'",
                   (f"share:{share.json()['id']}",))
    report = admin.get("/gate/admin/audit/patient", params={"patient_id": THANDI})
    rows = re.findall(r"<tr><td>([0-9-]+ [0-9:]+)</td>\s*<td>([^<]+)</td>", report.text)
    who = sorted({name.strip() for _, name in rows})
    assert who == sorted(["drone", "drtwo", f"the patient's share link #{share.json()['id']}"]), report.text
    assert all(time.strftime("%Y-%m-%d", time.localtime(before)) <= ts[:10] for ts, _ in rows)
    assert ANNA not in report.text and ANNA_STUDY not in report.text
    assert 'data-print' in report.text
    as_json = admin.get("/gate/admin/audit/patient", params={"patient_id": THANDI},
                        headers={"Accept": "application/json"}).json()
    assert {a["who"] for a in as_json["accesses"]} == {"drone", "drtwo", f"share:{share.json()['id']}"}
    assert all(a["ts"] >= time.strftime("%Y-%m-%dT%H:%M", time.gmtime(before - 60)) for a in as_json["accesses"])
    looked = wait_for_audit(server, "action = 'audit.patient_report' AND patient_id = ? AND actor = ?",
                            (THANDI, ADMIN))
    assert looked


def test_the_breach_report_names_the_patients_an_account_saw(admin: Browser):
    """drone opened Thandi's and Anna's studies (the test above); drtwo only Thandi's."""
    today = time.strftime("%Y-%m-%d")
    for who, seen in (("drone", {THANDI, ANNA}), ("drtwo", {THANDI})):
        page = admin.get("/gate/admin/audit/breach", params={"user": who, "from": today, "to": today})
        assert page.status_code == 200 and f"patients shown to {who}" in page.text
        assert set(re.findall(r'audit/patient\?patient_id=([^"&]+)"', page.text)) == seen


def test_the_audit_is_searched_by_user_and_exported_as_csv(server: Server, admin: Browser):
    found = admin.get("/gate/admin/audit", params={"user": "drone"})
    assert found.status_code == 200 and 'id="events"' in found.text
    export = re.search(r'id="export" href="([^"]+)"', found.text).group(1).replace("&amp;", "&")
    answer = admin.get(export)
    assert answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows and {row["actor"] for row in rows} == {"drone"}
    assert wait_for_audit(server, "action = 'audit.export' AND actor = ?", (ADMIN,))


def test_audit_rows_of_lists_keep_every_patient(server: Server):
    assert server.admin("GET", "/patients?expand").status_code == 200
    rows = audit_rows(server, "detail LIKE '%\"patients\"%'")
    assert rows, "a list naming several patients keeps them in its detail"


def test_the_server_page_shows_no_secret_of_its_configuration(server: Server, admin: Browser):
    page = admin.get("/gate/admin/server").text
    assert "Effective configuration" in page and "registered-user" not in page
    state = server.proc.database.parent
    key_files = [p for p in state.iterdir() if p.is_file() and p.name.endswith(".key")]
    assert key_files, "the Gate's generated key files are beside its store"
    secrets = ["registered-user-secret-1", "peer-secret-2", "dicomweb-secret-3", "hdr-4"]
    secrets += [p.read_text().strip() for p in key_files]
    for secret in secrets:
        assert secret not in page and secret not in admin.get("/gate/admin/server",
                                                              headers={"Accept": "application/json"}).text
    shown = admin.get("/gate/admin/server", headers={"Accept": "application/json"}).json()
    assert shown["configuration"]["RegisteredUsers"] == {"alice": "********"}  # redacted, not dropped

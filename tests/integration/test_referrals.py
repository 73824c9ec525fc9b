"""Referrals on a real Orthanc: studies made with pydicom, pushed with storescu, each carrying one
referral variant, land where they should (a grant, a review item, or nothing), as the API says and
as the doctor finds by opening the study; a review decision links; a patient seen before with
another birth date is held; bad input never links and never breaks arrival. And a referring
doctor's morning in Chromium on a phone: the new study marked new on their dashboard, opened in a
viewer, downloaded (screenshots in var/artifacts/referrals/)."""

from __future__ import annotations

import io
import sqlite3
import time
import zipfile
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.conftest import ADMIN, Server, start_gate, wait_for_audit
from tests.harness import storescu
from tests.integration.grants_support import PASSWORD, Caller, push_study, register_doctors
from tests.referral_studies import Referral, write_study

pytestmark = pytest.mark.integration

# Registered doctors: (key, fields). Two share a surname; one has an accented name; one is inactive.
DOCTORS = {
    "pieter": {"hpcsa_number": "MP0100001", "title": "Dr", "first_name": "Pieter", "last_name": "van der Merwe",
               "username": "drpieter"},
    "susan": {"hpcsa_number": "MP0100002", "title": "Dr", "first_name": "Susan", "last_name": "van der Merwe",
              "username": "drsusan"},
    "zoe": {"hpcsa_number": "MP0100003", "title": "Prof", "first_name": "Zoë", "last_name": "Müller",
            "username": "drzoe"},
    "botha": {"hpcsa_number": "MP0100004", "title": "Dr", "first_name": "Johan", "last_name": "Botha",
              "username": "drbotha", "hpcsa_active": False},
    "naledi": {"hpcsa_number": "MP0400001", "title": "Dr", "first_name": "Naledi", "last_name": "Mokoena",
               "username": "drnaledi"},
}
REFERRALS = {"Enabled": True, "DefaultLevel": "download", "GrantDays": 30}
# The must-show's timing line is also kept here (var/ is not in git).
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts" / "referrals"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    server = start_gate(tmp_path_factory.mktemp("referrals"), gate={"Referrals": REFERRALS})
    try:
        commands = [(["create-user", fields["username"], "--role", "referring_doctor", "--password-stdin",
                      "--no-password-change"],
                     PASSWORD + "\n") for fields in DOCTORS.values()]
        server.proc.gatectl_many(commands)
        yield server
    finally:
        server.proc.stop()


@pytest.fixture(scope="module")
def doctors(srv: Server) -> dict[str, int]:
    return register_doctors(srv, DOCTORS)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("referral-studies")


push = push_study


def referral_of(srv: Server, study_uid: str, seconds: float = 10.0) -> dict:
    """The study's referral, once arrival has decided it."""
    deadline = time.monotonic() + seconds
    while True:
        found = srv.admin("GET", f"/gate/api/referrals?study_uid={study_uid}").json()["referrals"]
        if found or time.monotonic() > deadline:
            assert found, f"no referral for {study_uid} after {seconds} s"
            return found[0]
        time.sleep(0.05)


def open_items(srv: Server, study_uid: str) -> list[dict]:
    return [item for item in srv.admin("GET", "/gate/api/review").json()["items"] if item["study_uid"] == study_uid]


def can_open(srv: Server, username: str, orthanc_id: str) -> bool:
    answer = Caller(srv, username)("GET", f"/studies/{orthanc_id}")
    assert answer.status_code in (200, 403, 404), answer.status_code
    return answer.status_code == 200


CASES = [
    # (name, what the study says, the doctor it must be linked to, or None for a review item)
    ("hpcsa number", Referral("REF-1", referring="SMITH^X", hpcsa_codes=("MP0100002",)), "susan"),
    ("hpcsa number written loosely", Referral("REF-2", hpcsa_codes=(" mp 0100001 ",)), "pieter"),
    ("name only", Referral("REF-3", referring="MULLER^ZOE"), "zoe"),
    ("title and accents", Referral("REF-4", referring="Prof. Müller^Zoë"), "zoe"),
    ("initial", Referral("REF-5", referring="VAN DER MERWE^S^^DR"), "susan"),
    ("latin-1 bytes in ISO_IR 100", Referral("REF-6", referring=b"M\xfcller^Zo\xeb", charset="ISO_IR 100"), "zoe"),
    ("requesting physician when no referring one", Referral("REF-7", requesting="Dr Pieter van der Merwe"), "pieter"),
]
REVIEWED = [
    ("same surname, no first name", Referral("REV-1", referring="VAN DER MERWE^^^DR")),
    ("same surname, another initial", Referral("REV-2", referring="van der Merwe^J")),
    ("unknown doctor", Referral("REV-3", referring="NOBODY^SOMEONE")),
    ("inactive HPCSA registration", Referral("REV-4", referring="BOTHA^JOHAN")),
    ("malformed HPCSA code", Referral("REV-5", referring="MULLER^ZOE", hpcsa_codes=("MP12",))),
    ("unknown HPCSA number", Referral("REV-6", referring="MULLER^ZOE", hpcsa_codes=("MP9999999",))),
    ("invalid UTF-8 in ISO_IR 192", Referral("REV-7", referring=b"M\xfcller^Zo\xeb", charset="ISO_IR 192")),
]
NOTHING = [
    ("no referring physician", Referral("NONE-1")),
    ("a 2,000-character name", Referral("NONE-2", referring="A" * 1000 + "^" + "B" * 999)),
]


@pytest.mark.parametrize(("name", "referral", "doctor"), CASES, ids=[c[0] for c in CASES])
def test_a_clear_referral_is_linked_and_the_doctor_opens_the_study(srv, doctors, folder, name, referral, doctor):
    study_uid = push(srv, folder, referral)
    found = referral_of(srv, study_uid)
    assert (found["status"], found["doctor"]) == ("linked", doctors[doctor]), found
    assert can_open(srv, DOCTORS[doctor]["username"], found["orthanc_id"])
    others = [key for key in DOCTORS if key != doctor]
    assert not any(can_open(srv, DOCTORS[key]["username"], found["orthanc_id"]) for key in others)
    grants = srv.admin("GET", f"/gate/api/grants?study_uid={study_uid}").json()["grants"]
    assert [(g["doctor"], g["level"], g["source"]) for g in grants] == [(doctors[doctor], "download", "referral")]
    assert grants[0]["expires_at"] is not None  # GrantDays


@pytest.mark.parametrize(("name", "referral"), REVIEWED, ids=[c[0] for c in REVIEWED])
def test_an_unclear_referral_goes_to_review_and_nobody_is_granted(srv, doctors, folder, name, referral):
    study_uid = push(srv, folder, referral)
    found = referral_of(srv, study_uid)
    assert (found["status"], found["doctor"], found["grant"]) == ("review", None, None), found
    items = open_items(srv, study_uid)
    assert [item["kind"] for item in items] == ["referral"]
    assert srv.admin("GET", f"/gate/api/grants?study_uid={study_uid}").json()["grants"] == []
    assert not any(can_open(srv, fields["username"], found["orthanc_id"]) for fields in DOCTORS.values())


@pytest.mark.parametrize(("name", "referral"), NOTHING, ids=[c[0] for c in NOTHING])
def test_a_study_without_a_usable_referrer_links_nothing(srv, doctors, folder, name, referral):
    study_uid = push(srv, folder, referral)
    found = referral_of(srv, study_uid)
    assert found["status"] in ("none", "review") and found["grant"] is None, found
    assert srv.admin("GET", f"/gate/api/grants?study_uid={study_uid}").json()["grants"] == []
    assert "Traceback" not in srv.proc.log_text()


def test_no_arrival_so_far_failed(srv, doctors):
    """After every variant above (bad input included): no arrival raised, none was skipped."""
    log = srv.proc.log_text()
    assert "Traceback" not in log and "could not handle the arrival" not in log
    assert wait_for_audit(srv, "action = 'referral.error'", seconds=0) == []


def test_same_surname_candidates_are_offered_and_a_reviewer_links_one(srv, doctors, folder):
    study_uid = push(srv, folder, Referral("REV-PICK", referring="Dr van der Merwe"))
    found = referral_of(srv, study_uid)
    [item] = open_items(srv, study_uid)
    assert sorted(c["id"] for c in item["candidates"]) == sorted([doctors["pieter"], doctors["susan"]])
    assert not can_open(srv, "drpieter", found["orthanc_id"])

    inactive = srv.admin("POST", f"/gate/api/review/{item['id']}/resolve",
                         json={"action": "link", "doctor": doctors["botha"]})
    assert inactive.status_code == 409, inactive.text
    resolved = srv.admin("POST", f"/gate/api/review/{item['id']}/resolve",
                         json={"action": "link", "doctor": doctors["pieter"], "note": "phoned the practice"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    assert can_open(srv, "drpieter", found["orthanc_id"]) and not can_open(srv, "drsusan", found["orthanc_id"])
    assert referral_of(srv, study_uid)["status"] == "linked"
    again = srv.admin("POST", f"/gate/api/review/{item['id']}/resolve", json={"action": "dismiss"})
    assert again.status_code == 409
    rows = wait_for_audit(srv, "action = 'review.resolve' AND study_uid = ?", (study_uid,))
    assert rows and rows[0]["actor"] == ADMIN and "phoned the practice" in rows[0]["detail"]


def test_a_dismissed_item_links_nothing(srv, doctors, folder):
    study_uid = push(srv, folder, Referral("REV-DISMISS", referring="NOBODY^ELSE"))
    found = referral_of(srv, study_uid)
    [item] = open_items(srv, study_uid)
    answer = srv.admin("POST", f"/gate/api/review/{item['id']}/resolve", json={"action": "dismiss"})
    assert answer.status_code == 200 and answer.json()["status"] == "dismissed"
    assert referral_of(srv, study_uid)["status"] == "dismissed"
    assert srv.admin("GET", f"/gate/api/grants?study_uid={study_uid}").json()["grants"] == []
    assert not any(can_open(srv, fields["username"], found["orthanc_id"]) for fields in DOCTORS.values())


def test_another_birth_date_under_a_known_patient_id_is_held(srv, doctors, folder):
    first = push(srv, folder, Referral("MISMATCH-1", patient_name="DLAMINI^THABO", birth_date="19800101",
                                       sex="M", referring="MULLER^ZOE"))
    assert referral_of(srv, first)["status"] == "linked"
    second = push(srv, folder, Referral("MISMATCH-1", patient_name="DLAMINI^THABO", birth_date="19810101",
                                        sex="M", referring="MULLER^ZOE"))
    held = referral_of(srv, second)
    assert (held["status"], held["grant"]) == ("held", None), held
    [item] = open_items(srv, second)
    assert item["kind"] == "patient" and "birth date" in item["reason"]
    assert "DLAMINI" not in item["reason"].upper()
    assert not can_open(srv, "drzoe", held["orthanc_id"])
    # Confirming the patient matches the referral as on arrival: linked to the doctor it names.
    answer = srv.admin("POST", f"/gate/api/review/{item['id']}/resolve", json={"action": "confirm_patient"})
    assert answer.status_code == 200, answer.text
    assert referral_of(srv, second)["status"] == "linked"
    assert can_open(srv, "drzoe", held["orthanc_id"])


def test_an_sa_id_number_contradicting_the_sex_is_held(srv, doctors, folder):
    # Born 1980-01-01, gender digits 5009 (male), a citizen: the study says female.
    id_number = _sa_id("800101500908")
    study_uid = push(srv, folder, Referral(id_number, birth_date="19800101", sex="F", referring="MULLER^ZOE"))
    held = referral_of(srv, study_uid)
    assert held["status"] == "held", held
    [item] = open_items(srv, study_uid)
    assert item["kind"] == "patient" and id_number not in item["reason"]


def test_arrival_is_audited_and_the_grant_is_usable_within_a_second(srv, doctors, folder):
    study_uid, files = write_study(folder, Referral("TIMING-1", referring="MULLER^ZOE"))
    started = time.monotonic()
    assert storescu(srv.proc.dicom_port, files).returncode == 0
    stored = time.monotonic()
    oid = srv.admin("POST", "/tools/lookup", data=study_uid).json()[0]["ID"]
    while not can_open(srv, "drzoe", oid):
        assert time.monotonic() - stored < 10, "the grant never became usable"
        time.sleep(0.01)
    usable_ms = (time.monotonic() - stored) * 1000
    line = (f"autolink: first instance stored to grant usable {usable_ms:.0f} ms "
            f"(storescu itself took {(stored - started) * 1000:.0f} ms)")
    print(line)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "autolink.log", "a", encoding="utf-8") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    rows = wait_for_audit(srv, "action = 'referral.link' AND study_uid = ?", (study_uid,))
    assert rows and rows[0]["actor"] == "gate:referrals" and rows[0]["patient_id"] == "TIMING-1"


def test_the_review_api_is_for_admins_only(srv, doctors):
    for method, path in (("GET", "/gate/api/review"), ("GET", "/gate/api/referrals"),
                         ("POST", "/gate/api/review/1/resolve")):
        assert Caller(srv, "drzoe")(method, path, json={"action": "dismiss"}).status_code == 403
        assert requests.request(method, srv.url(path), timeout=10).status_code == 401


def test_bad_review_requests_are_refused_with_a_message(srv, doctors):
    assert srv.admin("GET", "/gate/api/review?status=nonsense").status_code == 400
    assert srv.admin("POST", "/gate/api/review/999999/resolve", json={"action": "dismiss"}).status_code == 404
    items = srv.admin("GET", "/gate/api/review").json()["items"]
    referral_item = next(item for item in items if item["kind"] == "referral")
    for body in ({"action": "link"}, {"action": "link", "doctor": "1"}, {"action": "confirm_patient"},
                 {"action": "dismiss", "extra": 1}, {"action": "dismiss", "note": "x" * 501}):
        answer = srv.admin("POST", f"/gate/api/review/{referral_item['id']}/resolve", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"] and answer.json()["message"]


def _sa_id(body: str) -> str:
    """A South African ID number: the first twelve digits and their Luhn check digit."""
    digits = [int(c) for c in body]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 0:
            digit *= 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    return body + str((10 - total % 10) % 10)


def test_a_doctor_granted_one_study_reads_its_patient_with_only_that_study(srv, doctors, folder):
    """Orthanc Explorer's study page asks for the patient: a referral grants the study, not the
    patient, so the patient comes trimmed to the studies the doctor holds."""
    mine = push(srv, folder, Referral("TWO-STUDIES", patient_name="NAIDOO^PRIYA", referring="MULLER^ZOE"))
    theirs = push(srv, folder, Referral("TWO-STUDIES", patient_name="NAIDOO^PRIYA",
                                        referring="Dr Pieter van der Merwe"))
    mine_oid, theirs_oid = referral_of(srv, mine)["orthanc_id"], referral_of(srv, theirs)["orthanc_id"]
    patient = srv.admin("GET", f"/studies/{mine_oid}").json()["ParentPatient"]
    assert sorted(srv.admin("GET", f"/patients/{patient}").json()["Studies"]) == sorted([mine_oid, theirs_oid])
    for query in ("", "?full"):
        answer = Caller(srv, "drzoe")("GET", f"/patients/{patient}{query}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["Studies"] == [mine_oid]
        assert theirs_oid not in answer.text
    assert Caller(srv, "drpieter")("GET", f"/patients/{patient}").json()["Studies"] == [theirs_oid]
    assert Caller(srv, "drsusan")("GET", f"/patients/{patient}").status_code == 403
    # Other spellings of the route: refused (they need a grant on the patient), or, where Orthanc
    # hands them to the plugin's route, trimmed alike. Never the whole patient.
    for spelling in (f"/patients/{patient}/", f"//patients/{patient}", f"/PATIENTS/{patient}",
                     f"/patients/{patient}?_method=GET"):
        answer = Caller(srv, "drzoe")("GET", spelling)
        assert answer.status_code in (200, 400, 403, 404) and theirs_oid not in answer.text, spelling
    assert Caller(srv, "drzoe")("DELETE", f"/patients/{patient}").status_code == 403
    assert srv.admin("GET", f"/patients/{patient}").status_code == 200
    # Whose data each answer held, in every format Orthanc answers in (names, ?full, ?short).
    assert Caller(srv, "drzoe")("GET", f"/patients/{patient}?short").status_code == 200
    rows = wait_for_audit(srv, "action = 'view' AND route_class = 'patient' AND actor = 'drzoe'")
    assert rows and {row["patient_id"] for row in rows} == {"TWO-STUDIES"}


# -- the doctor's morning, in Chromium on a phone ------------------------------------------------------

PHONE = {"width": 360, "height": 740}


def push_linked(srv: Server, folder: Path, referral: Referral) -> str:
    """Push a study naming the doctor; its Orthanc id once arrival has linked it."""
    study_uid = push_study(srv, folder, referral, instances=3)
    deadline = time.monotonic() + 10
    while True:
        found = srv.admin("GET", f"/gate/api/referrals?study_uid={study_uid}").json()["referrals"]
        if found and found[0]["status"] == "linked":
            return found[0]["orthanc_id"]
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_doctor_finds_a_new_referral_on_a_phone_opens_and_downloads_it(srv, doctors, browser, tmp_path):
    yesterday = push_linked(srv, tmp_path, Referral("PHONE-1", patient_name="KHUMALO^AYANDA",
                                                    referring="Dr. Mokoena^N", description="CHEST XRAY"))
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, accept_downloads=True)
    page = context.new_page()
    failures: list[str] = []
    page.on("response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        page.goto(srv.url("/"))
        page.wait_for_url("**/gate/login**")
        page.fill('input[name="username"]', "drnaledi")
        page.fill('input[name="password"]', PASSWORD)
        page.click('button[type="submit"]')
        page.wait_for_url("**/gate/doctor")
        assert page.inner_text("#signed-in-as") == "drnaledi"
        # The doctor's previous visit ended now (the visit before the study that comes next).
        with sqlite3.connect(srv.proc.database) as db:
            db.execute("UPDATE users SET previous_visit_at = ? WHERE username = 'drnaledi'", (time.time(),))
        time.sleep(1.1)  # Orthanc's LastUpdate has a one-second resolution
        today = push_linked(srv, tmp_path, Referral("PHONE-2", patient_name="MOLOI^LERATO",
                                                    referring="MOKOENA^NALEDI^^DR", description="CT BRAIN"))
        page.reload()
        new = page.locator(f'li.study[data-study="{today}"]')
        old = page.locator(f'li.study[data-study="{yesterday}"]')
        assert new.locator(".badge").inner_text() == "New"
        assert old.locator(".badge").count() == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
        shot(page, "dashboard-phone")

        with page.expect_download() as download:
            new.locator("a.download").click()
        archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
        assert len([name for name in archive.namelist() if name.lower().endswith(".dcm")]) == 3

        new.locator("a.open-explorer").click()
        page.wait_for_selector("#study.ui-page-active #study-info li", timeout=15000)
        assert "CT BRAIN" in page.inner_text("#study.ui-page-active")
        shot(page, "explorer-study-phone")
        assert failures == [], failures
    finally:
        context.close()


def test_a_report_attached_to_a_linked_study_opens_from_the_dashboard_for_its_doctor_only(srv, doctors, folder):
    study_uid = push(srv, folder, Referral("REPORT-1", patient_name="MOKOENA^THABO", referring="MULLER^ZOE"))
    oid = referral_of(srv, study_uid)["orthanc_id"]
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    stored = srv.admin("POST", "/instances", data=_encapsulated_pdf("REPORT-1", "MOKOENA^THABO", study_uid, pdf))
    assert stored.status_code == 200, stored.text
    zoe, pieter = Caller(srv, "drzoe"), Caller(srv, "drpieter")
    page = zoe("GET", "/gate/doctor?q=REPORT-1", headers={"Accept": "text/html"})
    assert page.status_code == 200 and f"/gate/doctor/studies/{oid}/report" in page.text
    report = zoe("GET", f"/gate/doctor/studies/{oid}/report")
    assert report.status_code == 200 and report.headers["Content-Type"] == "application/pdf"
    assert report.content == pdf
    assert pieter("GET", f"/gate/doctor/studies/{oid}/report").status_code == 404
    theirs = pieter("GET", "/gate/doctor", headers={"Accept": "text/html"})
    assert theirs.status_code == 200 and f"/gate/doctor/studies/{oid}/report" not in theirs.text


def _encapsulated_pdf(patient_id: str, patient_name: str, study_uid: str, pdf: bytes) -> bytes:
    """A PDF report as DICOM Encapsulated PDF, in its own series of the study."""
    encapsulated_pdf = "1.2.840.10008.5.1.4.1.1.104.1"
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = encapsulated_pdf
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = encapsulated_pdf, ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = patient_id, patient_name, "19700101", "F"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study_uid, generate_uid(), "DOC"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()

"""The doctor dashboard (/gate/doctor) and the welcome e-mail's set-password link on a real Orthanc.

Three studies pushed over DICOM (storescu): the doctor, a login tied to a doctor record, is granted
the older one at view_only and the newer one (which holds an Encapsulated PDF report) at download;
the third, which also holds a report, is someone else's. The doctor sees exactly their two (page,
search, report route), the download link only where the level allows, the report as an inline PDF;
in Chromium on a 360x740 phone they land on the dashboard, the newer study is marked new, opens in
Orthanc Explorer and downloads as a ZIP. Screenshots go to var/artifacts/doctor-dashboard/."""

from __future__ import annotations

import io
import re
import sqlite3
import time
import uuid
import zipfile
from contextlib import closing
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from plugin.services import password_links
from plugin.store.db import Store
from tests.conftest import ADMIN, ADMIN_PASSWORD, Server, audit_rows, start_gate
from tests.harness import REPO, storescu
from tests.integration.grants_support import PASSWORD, Caller, LeakDetector, new_doctor
from tests.referral_studies import Referral, write_study
from tests.unit.conftest import sqlite_url

ARTIFACTS = REPO / "var" / "artifacts" / "doctor-dashboard"
DOCTOR = "drdash"
PHONE = {"width": 360, "height": 740}
HTML = {"Accept": "text/html,application/xhtml+xml"}
PDF_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
STUDIES = {  # key: (Referral, StudyDate, Modality of its images, with a PDF report)
    "older": (Referral("DASH-1", "MOKOENA^LERATO", "19800214", accession="DSH-A", description="CT CHEST"),
              "20240110", "CT", False),
    "newer": (Referral("DASH-2", "NAIDOO^PRIYA", "19910503", accession="DSH-B", description="MR KNEE"),
              "20251120", "MR", True),
    "other": (Referral("DASH-3", "SECRETARIS^OTHELLO", "19650909", accession="DSH-C", description="CT CHEST"),
              "20251121", "CT", True),
}


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF a browser can show."""
    stream = f"BT /F1 18 Tf 40 100 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    body, offsets = b"%PDF-1.4\n", []
    for number, content in enumerate(objects, 1):
        offsets.append(len(body))
        body += b"%d 0 obj\n%s\nendobj\n" % (number, content)
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return body + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def pdf_report(folder: Path, image: Path, text: str) -> Path:
    """An Encapsulated PDF instance in the study of `image`, for its patient (its own series)."""
    source = pydicom.dcmread(image, stop_before_pixels=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = PDF_SOP_CLASS, generate_uid()
    meta.TransferSyntaxUID, meta.ImplementationClassUID = ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = PDF_SOP_CLASS, meta.MediaStorageSOPInstanceUID
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyDate",
                    "StudyTime", "AccessionNumber", "StudyDescription"):
        setattr(ds, keyword, getattr(source, keyword))
    ds.SeriesInstanceUID, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = generate_uid(), "DOC", 99, 1
    ds.MIMETypeOfEncapsulatedDocument, ds.DocumentTitle = "application/pdf", "Radiology report"
    ds.BurnedInAnnotation = "YES"
    ds.EncapsulatedDocument = minimal_pdf(text)
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def make_studies(folder: Path) -> tuple[dict[str, str], list[Path]]:
    """The three studies' files: StudyInstanceUIDs by key, and every file to push."""
    uids, files = {}, []
    for key, (referral, study_date, modality, with_report) in STUDIES.items():
        uid, paths = write_study(folder / key, referral, instances=3)
        for path in paths:
            dataset = pydicom.dcmread(path)
            dataset.StudyDate, dataset.Modality = study_date, modality
            dataset.save_as(path, enforce_file_format=True)
        if with_report:
            paths.append(pdf_report(folder / key, paths[0], f"Report of {key}"))
        uids[key] = uid
        files += paths
    return uids, files


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory):
    """The server, the doctor (a login tied to a doctor record), the studies and the grants. The
    doctor's previous visit is set between the two grants, so only the newer study is new."""
    work = tmp_path_factory.mktemp("doctor-dashboard")
    srv = start_gate(work / "server")
    try:
        uids, files = make_studies(work / "dicom")
        pushed = storescu(srv.proc.dicom_port, files)
        assert pushed.returncode == 0, pushed.stderr
        new_doctor(srv, DOCTOR)
        registered = srv.admin("POST", "/gate/api/doctors", json={
            "hpcsa_number": f"MP{uuid.uuid4().int % 10**7:07d}", "last_name": "Dash", "username": DOCTOR})
        assert registered.status_code == 201, registered.text
        doctor_id = registered.json()["id"]
        studies = {key: srv.admin("POST", "/tools/lookup", data=uid).json()[0]["ID"] for key, uid in uids.items()}
        grant(srv, doctor_id, "view_only", uids["older"])
        time.sleep(1.1)  # Orthanc's LastUpdate and our times are to the second
        previous_visit = time.time()
        with closing(sqlite3.connect(srv.proc.database, timeout=10)) as db, db:
            db.execute("UPDATE users SET visit_at = ?, previous_visit_at = ? WHERE username = ?",
                       (previous_visit, previous_visit, DOCTOR))
        time.sleep(0.1)
        grant(srv, doctor_id, "download", uids["newer"])
        yield {"server": srv, "uids": uids, "studies": studies, "doctor_id": doctor_id}
    finally:
        srv.proc.stop()


def grant(srv: Server, doctor_id: int, level: str, study_uid: str) -> None:
    answer = srv.admin("POST", "/gate/api/grants", json={"doctor": doctor_id, "level": level, "study_uid": study_uid})
    assert answer.status_code == 201, answer.text


def signed_in(srv: Server, username: str = DOCTOR, password: str = PASSWORD) -> requests.Session:
    session = Caller(srv, username, password).signed_in()
    session.headers.update(HTML)
    return session


def page(session: requests.Session, srv: Server, **params: str) -> requests.Response:
    return session.get(srv.url("/gate/doctor"), params=params, timeout=30, allow_redirects=False)


def cards(html: str) -> list[str]:
    """Orthanc ids of the studies on a dashboard page, in order."""
    return re.findall(r'data-study="([0-9a-f-]+)"', html)


def card(html: str, study: str) -> str:
    start = html.index(f'data-study="{study}"')
    return html[start:html.index("</li>", start)]


def other_patient(srv: Server, dash_data: dict) -> LeakDetector:
    referral = STUDIES["other"][0]
    return LeakDetector([referral.patient_id, referral.patient_name, referral.accession, dash_data["uids"]["other"],
                         dash_data["studies"]["other"]])


# -- what the doctor sees ------------------------------------------------------------------------------


def test_the_doctor_sees_exactly_their_two_studies_newest_first(dash):
    srv, studies = dash["server"], dash["studies"]
    answer = page(signed_in(srv), srv)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html")
    assert cards(answer.text) == [studies["newer"], studies["older"]]
    assert other_patient(srv, dash).found_in(answer.content) == []
    for key in ("older", "newer"):
        referral = STUDIES[key][0]
        shown = card(answer.text, studies[key])
        for value in (referral.patient_id, referral.accession, referral.description, "1980-02-14" if key == "older"
                      else "1991-05-03", STUDIES[key][2]):
            assert value in shown, (key, value)
    assert "no-store" in answer.headers["Cache-Control"]


@pytest.mark.parametrize(("params", "expected"), [
    ({"q": "naidoo pr"}, ["newer"]),
    ({"q": "mokoena"}, ["older"]),
    ({"q": "dash-1"}, ["older"]),  # PatientID, whatever the case
    ({"q": "DSH"}, ["newer", "older"]),  # accession numbers: the third is not theirs
    ({"q": "chest"}, ["older"]),  # description: the other CT CHEST is not theirs
    ({"q": "secretaris"}, []),
    ({"q": "DSH-C"}, []),
    ({"modality": "MR"}, ["newer"]),
    ({"modality": "DOC"}, ["newer"]),
    ({"from": "2025-01-01"}, ["newer"]),
    ({"from": "2024-01-01", "to": "2024-12-31"}, ["older"]),
    ({"q": "dsh", "modality": "CT", "to": "2024-06-30"}, ["older"]),
])
def test_search_finds_only_their_studies(dash, params, expected):
    srv = dash["server"]
    answer = page(signed_in(srv), srv, **params)
    assert answer.status_code == 200
    assert cards(answer.text) == [dash["studies"][key] for key in expected]
    # What they typed comes back in the search box; nothing else of the other patient's does.
    beyond_the_form = re.sub(r'<form method="get".*?</form>', "", answer.text, flags=re.S)
    assert other_patient(srv, dash).found_in(beyond_the_form.encode()) == []


@pytest.mark.parametrize(("params", "message"), [
    ({"q": "x" * 65}, "at most 64 characters"),
    ({"q": "nai\x01doo"}, "control character"),
    ({"from": "2024-02-30"}, "real date written YYYY-MM-DD"),
    ({"from": "2025-01-01", "to": "2024-01-01"}, "after the"),
    ({"page": "zero"}, "whole number"),
    ({"modality": "C;T"}, "short code"),
])
def test_bad_input_is_a_clear_message(dash, params, message):
    srv = dash["server"]
    answer = page(signed_in(srv), srv, **params)
    assert answer.status_code == 400 and message in answer.text.replace("&#39;", "'")
    assert cards(answer.text) == []


def test_download_only_where_the_level_allows_it(dash):
    srv, studies = dash["server"], dash["studies"]
    html = page(signed_in(srv), srv).text
    assert f'href="/studies/{studies["newer"]}/archive"' in card(html, studies["newer"])
    assert "/archive" not in card(html, studies["older"])
    caller = Caller(srv, DOCTOR)
    assert caller("GET", f"/studies/{studies['older']}/archive").status_code == 403  # and the gate agrees


def test_each_study_offers_a_preview_and_the_viewers_of_this_server(dash):
    srv, studies, uids = dash["server"], dash["studies"], dash["uids"]
    session = signed_in(srv)
    shown = card(page(session, srv).text, studies["newer"])
    preview = re.search(r'<img loading="lazy" src="(/instances/[0-9a-f-]+/preview)"', shown).group(1)
    image = session.get(srv.url(preview), headers={"Accept": "image/webp,image/*,*/*;q=0.8"}, timeout=30)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    assert f'href="/app/explorer.html#study?uuid={studies["newer"]}"' in shown
    series = re.search(r'href="/web-viewer/app/viewer.html\?series=([0-9a-f-]+)"', shown).group(1)
    assert srv.admin("GET", f"/series/{series}").json()["MainDicomTags"]["Modality"] == "MR"
    if (REPO / "var" / "ohif" / "app" / "index.html").is_file():
        assert f'href="/ohif/viewer?StudyInstanceUIDs={uids["newer"]}"' in shown


def test_the_report_opens_as_an_inline_pdf_and_is_audited(dash):
    srv, studies = dash["server"], dash["studies"]
    session = signed_in(srv)
    html = page(session, srv).text
    link = f"/gate/doctor/studies/{studies['newer']}/report"
    assert f'href="{link}"' in card(html, studies["newer"]) and "/report" not in card(html, studies["older"])
    report = session.get(srv.url(link), timeout=30)
    assert report.status_code == 200 and report.headers["Content-Type"] == "application/pdf"
    assert report.headers["Content-Disposition"].startswith("inline")
    assert report.content.startswith(b"%PDF-1.4") and b"Report of newer" in report.content
    rows = audit_rows(srv, "route_class = 'doctor_report' AND outcome = 'allow' AND actor = ?", (DOCTOR,))
    assert rows and rows[-1]["study_uid"] == dash["uids"]["newer"] and rows[-1]["patient_id"] == "DASH-2"


def test_a_report_that_is_not_theirs_is_not_found_like_one_that_is_not_there(dash):
    srv, studies = dash["server"], dash["studies"]
    session = signed_in(srv)
    session.headers["Accept"] = "application/json"
    answers = [session.get(srv.url(f"/gate/doctor/studies/{study}/report"), timeout=30)
               for study in (studies["other"], studies["older"], "0" * 8 + "-00000000" * 4, "nonsense")]
    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert len({a.content for a in answers}) == 1
    assert other_patient(srv, dash).found_in(b"".join(a.content for a in answers)) == []
    # The admin sees that the other study's report is there.
    assert srv.admin("GET", f"/gate/doctor/studies/{studies['other']}/report").status_code == 200


def test_without_a_session_a_browser_signs_in_and_an_api_caller_is_refused(dash):
    srv = dash["server"]
    browser = srv.anonymous("GET", "/gate/doctor", headers=HTML, params={"q": "naidoo"})
    assert browser.status_code == 303 and browser.headers["Location"] == "/gate/login?next=/gate/doctor%3Fq%3Dnaidoo"
    api = srv.anonymous("GET", "/gate/doctor")
    assert api.status_code == 401 and "Basic" in api.headers["WWW-Authenticate"]
    assert srv.anonymous("GET", f"/gate/doctor/studies/{dash['studies']['newer']}/report").status_code == 401


def test_sign_in_lands_doctors_on_the_dashboard_and_admins_on_the_home_page(dash):
    srv = dash["server"]
    clerk = f"clerk-{uuid.uuid4().hex[:6]}"
    srv.proc.create_user(clerk, ["transcriptionist"], PASSWORD)
    tied = srv.admin("POST", "/gate/api/doctors", json={
        "hpcsa_number": f"MP{uuid.uuid4().int % 10**7:07d}", "last_name": "Clerk", "username": clerk})
    assert tied.status_code == 201, tied.text
    for username, password, lands in ((DOCTOR, PASSWORD, "/gate/doctor"), (clerk, PASSWORD, "/gate/doctor"),
                                      (ADMIN, ADMIN_PASSWORD, "/app/explorer.html")):
        session = requests.Session()
        answer = session.post(srv.url("/gate/login"), data={"username": username, "password": password, "home": "1",
                                                            "next": "/app/explorer.html"},
                              timeout=10, allow_redirects=False)
        assert (answer.status_code, answer.headers["Location"]) == (303, lands), username
        assert session.get(srv.url("/"), timeout=10, allow_redirects=False).headers["Location"] == lands, username


# -- in a phone's browser ------------------------------------------------------------------------------


def shot(target, name: str) -> None:  # noqa: ANN001 - a Playwright page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_on_a_phone_sign_in_see_what_is_new_open_and_download(dash, browser):
    srv, studies = dash["server"], dash["studies"]
    context = browser.new_context(viewport=PHONE, accept_downloads=True)
    failures: list[str] = []
    try:
        tab = context.new_page()
        tab.on("response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        tab.on("console", lambda m: failures.append(f"console: {m.text}") if m.type == "error" else None)
        tab.goto(srv.url("/"))
        tab.wait_for_url(re.compile(r".*/gate/login\?next=/$"))
        tab.fill('input[name="username"]', DOCTOR)
        tab.fill('input[name="password"]', PASSWORD)
        tab.click('button[type="submit"]')
        tab.wait_for_url(re.compile(r".*/gate/doctor$"))
        tab.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        shot(tab, "dashboard-phone")
        assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing wider than a phone
        newer, older = (tab.locator(f'li[data-study="{studies[k]}"]') for k in ("newer", "older"))
        assert newer.locator(".badge").inner_text() == "New"
        assert older.locator(".badge").count() == 0
        assert tab.locator("li[data-study]").count() == 2
        assert tab.inner_text("#signed-in-as") == DOCTOR
        # Search from the phone.
        tab.fill('input[name="q"]', "naidoo")
        tab.click('form[role="search"] button[type="submit"]')
        tab.wait_for_url(re.compile(r".*/gate/doctor\?q=naidoo.*"))
        assert tab.locator("li[data-study]").count() == 1
        shot(tab, "dashboard-phone-search")
        # The ZIP of the newer study (download level).
        with tab.expect_download() as download:
            newer = tab.locator(f'li[data-study="{studies["newer"]}"]')
            newer.locator("a.download").click()
        saved = download.value.path()
        assert download.value.failure() is None and download.value.suggested_filename.endswith(".zip")
        with zipfile.ZipFile(saved) as archive:
            assert len([n for n in archive.namelist() if not n.endswith("/")]) == 4  # 3 images and the report
        # The report opens in a new tab as a PDF.
        with context.expect_page() as opened:
            newer.locator("a.report").click()
        report = opened.value
        report.wait_for_load_state()
        assert report.url.endswith(f"/gate/doctor/studies/{studies['newer']}/report")
        report.close()
        # Open it in Orthanc Explorer: its study page shows the study.
        newer.locator("a.open-explorer").click()
        tab.wait_for_url(f"**/app/explorer.html#study?uuid={studies['newer']}")
        tab.wait_for_selector("#study.ui-page-active #study-info li", timeout=15000)
        assert "MR KNEE" in tab.inner_text("#study.ui-page-active #study-info")
        shot(tab, "explorer-study-phone")
        failures = [f for f in failures if "favicon" not in f]
        assert failures == [], "\n".join(failures)
    finally:
        context.close()


# -- the set-password link -----------------------------------------------------------------------------


def issue_link(srv: Server, username: str, hours: float = 72) -> str:
    """What the welcome e-mail's sender does: a link issued in a transaction of the server's store."""
    store = Store(sqlite_url(srv.proc.database), timeout_seconds=10)
    try:
        with store.transaction() as db:
            return password_links.issue(db, username, time.time(), hours)
    finally:
        store.dispose()


def test_set_password_link_end_to_end(dash, browser):
    srv = dash["server"]
    username = f"welcome-{uuid.uuid4().hex[:6]}"
    made = srv.admin("POST", "/gate/api/users", json={"username": username, "roles": ["referring_doctor"]})
    assert made.status_code == 201, made.text
    first = issue_link(srv, username)
    token = issue_link(srv, username)  # a second e-mail: the first link stops working
    assert srv.anonymous("GET", f"/gate/set-password/{first}").status_code == 410
    opened = srv.anonymous("GET", f"/gate/set-password/{token}")
    assert opened.status_code == 200 and username in opened.text
    assert opened.headers["Referrer-Policy"] == "no-referrer" and opened.headers["Cache-Control"] == "no-store"
    new_password = "my own long password 42"
    context = browser.new_context(viewport=PHONE)
    try:
        tab = context.new_page()
        tab.goto(srv.url(f"/gate/set-password/{token}"))
        shot(tab, "set-password-phone")
        tab.fill('input[name="new"]', new_password)
        tab.fill('input[name="confirm"]', new_password + "x")
        tab.click('button[type="submit"]')
        assert "The two passwords differ" in tab.inner_text(".error")
        tab.fill('input[name="new"]', new_password)
        tab.fill('input[name="confirm"]', new_password)
        tab.click('button[type="submit"]')
        tab.wait_for_selector("text=Your password is set")
        shot(tab, "set-password-done-phone")
        tab.click("a:has-text('Sign in')")
        tab.wait_for_url("**/gate/login")
        tab.fill('input[name="username"]', username)
        tab.fill('input[name="password"]', new_password)
        tab.click('button[type="submit"]')
        tab.wait_for_url(re.compile(r".*/gate/doctor$"))
    finally:
        context.close()
    assert requests.get(srv.url("/gate/api/me"), auth=(username, new_password), timeout=10).status_code == 200
    again = srv.anonymous("GET", f"/gate/set-password/{token}")
    assert again.status_code == 410 and "expired or was already used" in again.text
    reused = srv.anonymous("POST", f"/gate/set-password/{token}", data={"new": "x" * 20, "confirm": "x" * 20})
    assert reused.status_code == 410
    unknown = srv.anonymous("GET", f"/gate/set-password/{'A' * 43}")
    assert unknown.status_code == 404 and "expired or was already used" in unknown.text
    elsewhere = srv.anonymous("POST", f"/gate/set-password/{token}", headers={"Origin": "http://evil.example"},
                              data={"new": "x" * 20, "confirm": "x" * 20})
    assert elsewhere.status_code == 400
    assert audit_rows(srv, "action = 'password.link' AND outcome = 'success' AND actor = ?", (username,))
    assert token not in srv.proc.log_text() and first not in srv.proc.log_text()
    with closing(sqlite3.connect(srv.proc.database)) as db:
        dump = "\n".join(db.iterdump())
    assert token not in dump and first not in dump  # only their hashes are kept
    assert srv.anonymous("GET", "/gate/set-password/x/y").status_code == 401  # nothing else opens


def test_the_pages_are_ours_no_cdn(dash):
    srv = dash["server"]
    html = page(signed_in(srv), srv).text
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert io.BytesIO(html.encode()).getbuffer().nbytes < 200_000


# -- sharing with the patient (runs last: it raises the doctor's level on the newer study) ------------


def test_a_share_holder_makes_a_patient_link_from_the_dashboard(dash):
    """Holders of `share` on a study get "Share with patient": a form whose answer shows the link
    once; below that level the form is refused (403), and a study not theirs is not found (404)."""
    srv, studies = dash["server"], dash["studies"]
    created = srv.admin("POST", "/gate/api/grants", json={"doctor": dash["doctor_id"], "level": "share",
                                                          "study_uid": dash["uids"]["newer"]})
    assert created.status_code == 201, created.text
    try:
        session = signed_in(srv)
        html = page(session, srv).text
        assert f'href="/gate/doctor/studies/{studies["newer"]}/share"' in card(html, studies["newer"])
        assert "/share" not in card(html, studies["older"])
        assert session.get(srv.url(f"/gate/doctor/studies/{studies['older']}/share"),
                           timeout=30).status_code == 403
        assert session.get(srv.url(f"/gate/doctor/studies/{studies['other']}/share"),
                           timeout=30).status_code == 404
        form_page = session.get(srv.url(f"/gate/doctor/studies/{studies['newer']}/share"), timeout=30)
        assert form_page.status_code == 200 and 'id="share-form"' in form_page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form_page.text).group(1)
        fields = {"valid_hours": "72", "password": "", "max_downloads": "2", "language": "af", "email": "",
                  "mobile": "", "consent": "verbal", "consent_note": "at the desk"}
        forged = session.post(srv.url(f"/gate/doctor/studies/{studies['newer']}/share"), data=fields, timeout=30)
        assert forged.status_code == 403  # no CSRF token: refused
        bad = session.post(srv.url(f"/gate/doctor/studies/{studies['newer']}/share"),
                           data={**fields, "csrf_token": csrf, "max_downloads": "0"}, timeout=30)
        # The form again with its message (200: Orthanc 1.12.2+ would send a 400's page as plain text).
        assert bad.status_code == 200 and 'id="share-error"' in bad.text and "max_downloads" in bad.text
        made = session.post(srv.url(f"/gate/doctor/studies/{studies['newer']}/share"),
                            data={**fields, "csrf_token": csrf}, timeout=30)
        assert made.status_code == 200, made.text[:300]
        url = re.search(r'id="share-url" href="([^"]+)"', made.text).group(1)
        token = url.rsplit("/share/", 1)[1]
        landing = requests.get(srv.url(f"/share/{token}"), timeout=30)
        assert landing.status_code == 200 and 'lang="af"' in landing.text
        mine = [s for s in session.get(srv.url("/gate/api/shares"), headers={"Accept": "application/json"},
                                       timeout=30).json()["shares"]]
        assert [(s["created_by"], s["max_downloads"], s["consent"]["method"]) for s in mine] == [(DOCTOR, 2, "verbal")]
        assert [s["orthanc_id"] for s in mine[0]["studies"]] == [studies["newer"]]
    finally:
        srv.admin("DELETE", f"/gate/api/grants/{created.json()['id']}")

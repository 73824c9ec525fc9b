"""The OHIF Viewer served at /ohif/, in a real browser (Debian's Chromium, driven by Playwright):
an admin's worklist holds every patient's studies and a study opens with its images drawn; a doctor's
worklist holds exactly the studies of the patient granted to them. The same doctor in the other UIs:
Orthanc Explorer's "Open in OHIF" on a granted study, and the Orthanc Web Viewer on a granted series
(and refused on another patient's).

Three patients of real-size CT slices (tests/ct_series.py): Mokoena (two studies), Smith and Naidoo
(one each). Screenshots are kept in var/test-artefacts/ohif/.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import ADMIN, ADMIN_PASSWORD, Server, start_gate
from tests.ct_series import Patient, ct_study
from tests.harness import REPO

ARTEFACTS = REPO / "var" / "test-artefacts" / "ohif"
GRANTED = Patient("OG-1001", "Mokoena^Thandi")
STUDIES = [(GRANTED, "CT CHEST", "20250110"), (GRANTED, "CT ABDOMEN", "20250301"),
           (Patient("OG-2002", "Smith^John"), "CT HEAD", "20250205"),
           (Patient("OG-3003", "Naidoo^Priya"), "CT CHEST", "20250402")]
ROWS = "tbody tr[aria-selected]"  # one row per study in OHIF 3.13's worklist
DOCTOR, DOCTOR_PASSWORD = "drmokoena", "a doctor's long password"


@pytest.fixture(scope="module")
def ohif_server(tmp_path_factory: pytest.TempPathFactory):
    prepared = subprocess.run([sys.executable, str(REPO / "scripts" / "fetch_ohif.py")], capture_output=True,
                              text=True, timeout=600)
    assert prepared.returncode == 0, prepared.stderr
    workdir = tmp_path_factory.mktemp("ohif")
    srv = start_gate(workdir)
    try:
        srv.proc.create_user(DOCTOR, ["referring_doctor"], DOCTOR_PASSWORD)
        for index, (patient, description, date) in enumerate(STUDIES):
            _uid, files = ct_study(workdir / f"study{index}", patient, slices=4, study_date=date,
                                   description=description)
            for path in files:
                assert srv.admin("POST", "/instances", data=path.read_bytes()).status_code == 200
        granted = srv.admin("POST", "/gate/api/grants", json={"user": DOCTOR, "patient_id": GRANTED.patient_id,
                                                              "level": "view_only"})
        assert granted.status_code == 201, granted.text
        yield srv
    finally:
        srv.proc.stop()




class Watched:
    """A page whose every request is watched, and those of the pages it opens (a link to a viewer
    opens a tab): refusals of the viewer's own requests, and any request that leaves this server
    (a CDN, a tracker)."""

    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base = page, base
        self.failed: list[tuple[int, str]] = []
        self.elsewhere: list[str] = []
        self.frames: list[int] = []
        self.answers: list[tuple[int, str]] = []
        page.context.on("response", self._response)
        page.context.on("request", self._request)

    def answered(self, prefix: str) -> list[int]:
        """The statuses of the requests whose path starts with `prefix`, in order."""
        return [status for status, path in self.answers if path.startswith(prefix)]

    def _response(self, response) -> None:  # noqa: ANN001
        path = response.url.removeprefix(self.base)
        self.answers.append((response.status, path))
        if path.startswith(("/ohif/", "/dicom-web/")) and response.status >= 400:
            self.failed.append((response.status, path[:200]))
        if "/frames/" in path:
            self.frames.append(response.status)

    def _request(self, request) -> None:  # noqa: ANN001
        if not request.url.startswith((self.base, "data:", "blob:")):
            self.elsewhere.append(request.url[:200])


def sign_in_through(server: Server, browser, path: str, username: str, password: str) -> Watched:
    """Open `path` without a session: the Gate sends the browser to sign in, then back to `path`."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(server.url(path))
    assert "/gate/login" in page.url
    watched = Watched(page, server.url(""))
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    page.wait_for_url(f"**{path.split('?')[0].rstrip('/')}*")
    return watched


def worklist_rows(page: Page, expected: int) -> list[str]:
    page.wait_for_function(f"document.querySelectorAll('{ROWS}').length >= {expected}", timeout=30000)
    page.wait_for_timeout(500)  # a later answer would add rows: let it land before counting
    return page.locator(ROWS).all_inner_texts()


CANVAS_PIXELS = """selector => { const c = document.querySelector(selector);
    if (!c) { return {lit: 0, levels: 0, pixels: 0}; }
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lit = 0; const levels = new Set();
    for (let i = 0; i < d.length; i += 4) { if (d[i] || d[i + 1] || d[i + 2]) lit++; levels.add(d[i]); }
    return {lit: lit, levels: levels.size, pixels: d.length / 4}; }"""


def drawn_canvas(page: Page, selector: str = "canvas.cornerstone-canvas") -> dict:
    """The viewport's canvas once it holds an image: how many pixels are lit, how many grey levels."""
    page.wait_for_selector(selector, timeout=30000)
    page.wait_for_function(f"selector => ({CANVAS_PIXELS})(selector).lit > 1000", arg=selector, timeout=30000)
    return page.evaluate(CANVAS_PIXELS, selector)


def study_uids(server: Server, patient_id: str | None = None) -> list[str]:
    query = {"PatientID": patient_id} if patient_id else {}
    answer = server.admin("GET", "/dicom-web/studies", params=query)
    assert answer.status_code == 200
    return [study["0020000D"]["Value"][0] for study in answer.json()]


def test_admin_sees_every_patient_and_a_study_opens_with_its_images(ohif_server: Server, browser):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    watched = sign_in_through(ohif_server, browser, "/ohif/", ADMIN, ADMIN_PASSWORD)
    page = watched.page
    rows = worklist_rows(page, len(STUDIES))
    page.screenshot(path=ARTEFACTS / "admin-worklist.png")
    assert len(rows) == len(STUDIES), rows
    for patient in {patient for patient, *_ in STUDIES}:
        family, given = patient.name.split("^")
        assert sum(f"{family}, {given}" in row for row in rows) == sum(p == patient for p, *_ in STUDIES)

    page.goto(ohif_server.url(f"/ohif/viewer?StudyInstanceUIDs={study_uids(ohif_server, 'OG-2002')[0]}"))
    canvas = drawn_canvas(page)
    page.wait_for_timeout(1000)
    page.screenshot(path=ARTEFACTS / "admin-viewer.png")
    assert canvas["lit"] > canvas["pixels"] // 20 and canvas["levels"] > 50, canvas  # an image, not a blank
    assert watched.frames and set(watched.frames) == {200}, watched.frames
    assert watched.failed == [], watched.failed
    assert watched.elsewhere == [], "the viewer reached for another server"
    page.close()


def test_doctor_worklist_shows_exactly_the_granted_patients_studies(ohif_server: Server, browser):
    """The worklist is a DICOMweb search without a StudyInstanceUID, answered trimmed for doctors
    (issue 11, item 1); were it refused (403), OHIF would show "Data Source Connection Error"."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    watched = sign_in_through(ohif_server, browser, "/ohif/", DOCTOR, DOCTOR_PASSWORD)
    page = watched.page
    granted = [s for s in STUDIES if s[0] == GRANTED]
    try:
        rows = worklist_rows(page, len(granted))
    except PlaywrightTimeout:
        page.screenshot(path=ARTEFACTS / "doctor-worklist.png")
        refused = [path for status, path in watched.failed if path.startswith("/dicom-web/studies?")]
        pytest.fail(f"no worklist; its searches refused: {refused} (needs trimmed QIDO, issue 11 item 1)")
    page.screenshot(path=ARTEFACTS / "doctor-worklist.png")
    assert len(rows) == len(granted) and all("Mokoena, Thandi" in row for row in rows), rows

    page.locator("input").first.fill("Mokoena")  # the Patient column's filter: a name search
    page.wait_for_timeout(1500)
    rows = page.locator(ROWS).all_inner_texts()
    page.screenshot(path=ARTEFACTS / "doctor-name-search.png")
    assert len(rows) == len(granted), rows
    page.locator("input").first.fill("Naidoo")  # another patient's name finds nothing
    page.wait_for_timeout(1500)
    assert page.locator(ROWS).count() == 0
    assert watched.failed == [] and watched.elsewhere == []
    page.close()


def test_doctor_opens_a_granted_study_by_its_link(ohif_server: Server, browser):
    """What "open in viewer" gives a doctor: `/ohif/viewer?StudyInstanceUIDs=...` of a granted study
    draws its images, every request of it answered 200 (searches naming the study or the patient
    need no trimming)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    study = study_uids(ohif_server, GRANTED.patient_id)[0]
    watched = sign_in_through(ohif_server, browser, f"/ohif/viewer?StudyInstanceUIDs={study}", DOCTOR,
                              DOCTOR_PASSWORD)
    page = watched.page
    canvas = drawn_canvas(page)
    page.wait_for_timeout(1000)
    page.screenshot(path=ARTEFACTS / "doctor-viewer.png")
    assert canvas["lit"] > canvas["pixels"] // 20 and canvas["levels"] > 50, canvas
    assert watched.frames and set(watched.frames) == {200}, watched.frames
    assert watched.failed == [], watched.failed
    assert watched.elsewhere == []
    page.close()


def test_a_doctor_cannot_open_another_patients_study_in_the_viewer(ohif_server: Server, browser):
    watched = sign_in_through(ohif_server, browser, "/ohif/", DOCTOR, DOCTOR_PASSWORD)
    page = watched.page
    other = study_uids(ohif_server, "OG-3003")[0]
    page.goto(ohif_server.url(f"/ohif/viewer?StudyInstanceUIDs={other}"))
    page.wait_for_timeout(5000)
    page.screenshot(path=ARTEFACTS / "doctor-other-patient.png")
    assert watched.frames == []  # not one image of that study reached the browser
    assert "Naidoo" not in page.content()
    page.close()


def orthanc_study(server: Server, study_uid: str) -> str:
    found = server.admin("POST", "/tools/lookup", data=study_uid).json()
    return next(item["ID"] for item in found if item["Type"] == "Study")


def first_series_and_instance(server: Server, patient_id: str) -> tuple[str, str]:
    """Orthanc ids of a series of the patient's first study, and of its first instance."""
    series = server.admin("GET", f"/studies/{orthanc_study(server, study_uids(server, patient_id)[0])}/series")
    assert series.status_code == 200
    return series.json()[0]["ID"], series.json()[0]["Instances"][0]


def test_doctor_opens_a_granted_series_in_the_web_viewer(ohif_server: Server, browser):
    """Issue 11: the doctor granted one of three patients opens a series of that patient in the
    Orthanc Web Viewer: the series and every image the page asks for answer 200, and the image is
    drawn."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    series, _instance = first_series_and_instance(ohif_server, GRANTED.patient_id)
    watched = sign_in_through(ohif_server, browser, f"/web-viewer/app/viewer.html?series={series}", DOCTOR,
                              DOCTOR_PASSWORD)
    page = watched.page
    canvas = drawn_canvas(page, "#dicomImage canvas")
    page.wait_for_timeout(1000)
    page.screenshot(path=ARTEFACTS / "doctor-web-viewer.png")
    assert canvas["lit"] > canvas["pixels"] // 20 and canvas["levels"] > 50, canvas  # an image, not a blank
    assert watched.answered(f"/web-viewer/series/{series}") == [200]
    images = watched.answered("/web-viewer/instances/")
    assert images and set(images) == {200}, images
    assert [status for status, _path in watched.answers if status >= 400] == [], watched.answers
    assert "Mokoena" in page.inner_text("#topright")
    assert watched.elsewhere == []
    page.close()


def test_doctor_cannot_open_another_patients_series_in_the_web_viewer(ohif_server: Server, browser):
    """The same doctor on a series of a patient not granted: the viewer's request for the series
    is refused, no image is asked for or drawn, and the images named by id are refused too."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    series, instance = first_series_and_instance(ohif_server, "OG-3003")
    watched = sign_in_through(ohif_server, browser, f"/web-viewer/app/viewer.html?series={series}", DOCTOR,
                              DOCTOR_PASSWORD)
    page = watched.page
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1000)
    page.screenshot(path=ARTEFACTS / "doctor-web-viewer-other-patient.png")
    assert watched.answered(f"/web-viewer/series/{series}") == [403]
    assert watched.answered("/web-viewer/instances/") == []  # the viewer found nothing to draw
    assert page.evaluate(CANVAS_PIXELS, "#dicomImage canvas")["lit"] == 0
    assert "Naidoo" not in page.content()
    for name in (f"jpeg95-{instance}_0", f"deflate-{instance}_0"):  # asked for with the page's session
        assert page.request.get(ohif_server.url(f"/web-viewer/instances/{name}")).status == 403, name
    assert page.request.get(ohif_server.url(f"/web-viewer/is-stable-series/{series}")).status == 403
    page.close()


def test_explorer_opens_a_granted_study_in_ohif(ohif_server: Server, browser):
    """Orthanc Explorer's study page offers "Open in OHIF" (one button, styled as Explorer's) for
    each study the doctor may view, linking to that study; clicking it opens OHIF in a new tab
    with the study's images drawn. Another patient's study page offers nothing."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    watched = sign_in_through(ohif_server, browser, "/app/explorer.html", DOCTOR, DOCTOR_PASSWORD)
    page = watched.page
    button = page.locator("#gate-open-ohif")
    first, second = study_uids(ohif_server, GRANTED.patient_id)
    for uid in (second, first):  # the link follows the study shown; the last one is clicked
        page.goto(ohif_server.url(f"/app/explorer.html#study?uuid={orthanc_study(ohif_server, uid)}"))
        # The second study replaces the first on the same page (only the hash changes): wait for it.
        expect(page.locator("#study.ui-page-active #study-info")).to_contain_text(uid, timeout=15000)
        expect(button).to_be_visible()
        expect(button).to_have_attribute("href", f"../ohif/viewer?StudyInstanceUIDs={uid}")
        assert page.locator("a:has-text('Open in OHIF')").count() == 1
        # A hash that changes during jQuery Mobile's page transition is lost: let it end first.
        page.wait_for_function("!document.querySelector('.ui-mobile-viewport-transitioning')")
    assert "ui-btn" in button.get_attribute("class")  # enhanced by jQuery Mobile like its neighbours
    page.screenshot(path=ARTEFACTS / "doctor-explorer-study.png", full_page=True)

    with page.expect_popup() as popup:
        button.click()
    viewer = popup.value
    viewer.set_viewport_size({"width": 1400, "height": 900})
    canvas = drawn_canvas(viewer)
    viewer.wait_for_timeout(1000)
    viewer.screenshot(path=ARTEFACTS / "doctor-explorer-to-ohif.png")
    assert f"StudyInstanceUIDs={first}" in viewer.url
    assert canvas["lit"] > canvas["pixels"] // 20 and canvas["levels"] > 50, canvas
    assert watched.frames and set(watched.frames) == {200}, watched.frames
    assert watched.failed == [], watched.failed
    assert watched.elsewhere == []
    viewer.close()

    other = orthanc_study(ohif_server, study_uids(ohif_server, "OG-3003")[0])
    page.goto(ohif_server.url(f"/app/explorer.html#study?uuid={other}"))
    page.wait_for_selector("#study.ui-page-active .gate-bar", timeout=15000)
    page.wait_for_timeout(500)
    assert not button.is_visible()
    page.close()

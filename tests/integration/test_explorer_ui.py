"""Orthanc Explorer as each user sees it, in Debian's Chromium (Playwright): doctors with
`view_only` and with `download` see no "Insecure setup" banner, no button they cannot use and no
failed request; admins keep every button; a bookmarked Explorer URL without a (valid) session
lands on sign-in and comes back to it. Screenshots go to var/artifacts/explorer-ui/ (ignored by
git), named after the test and the page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import ADMIN, ADMIN_PASSWORD, Server, start_gate, upload_dicomdir
from tests.harness import REPO, OrthancProcess
from tests.integration.grants_support import PASSWORD, catalog, doctors_granted

ARTIFACTS = REPO / "var" / "artifacts" / "explorer-ui"
GRANTED = "77654033"  # Doe^Archibald: two studies in pydicom's DICOMDIR set
SIGN_IN = re.compile(r".*/gate/login\?next=.*")
LEVEL_OF = {"drview": "view_only", "drdown": "download"}

ADMIN_ONLY = ["#study-store", "#study-anonymize", "#series-store", "#series-anonymize", "#instance-store",
              "#patient-store", "#patient-anonymize", 'a[href="#upload"]', 'a[href="#query-retrieve"]',
              'a[href="#jobs"]', 'a[href="#plugins"]', "#stow-study", "#stow-series", "#open-dicomweb-client"]
DOWNLOADS = ["#patient-archive", "#patient-media", "#study-archive", "#study-media", "#series-archive",
             "#series-media", "#instance-download-dicom"]
DELETES = ["#patient-delete", "#study-delete", "#series-delete", "#instance-delete"]


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_gate(tmp_path_factory.mktemp("explorer-ui"))
    try:
        upload_dicomdir(srv)
        doctors_granted(srv, LEVEL_OF, GRANTED)
        yield srv
    finally:
        srv.proc.stop()


@pytest.fixture(scope="module")
def patient(ui_server: Server):
    data = catalog(ui_server)[GRANTED]
    study = data.studies[0]
    series = data.series_of(study)[0]
    return {"patient": data.oid, "study": study.oid, "series": series.oid,
            "instance": data.instances_of(series)[0].oid, "study_uid": study.uid}




class Watched:
    """A fresh browser context and page, with every failed request and console error it sees."""

    def __init__(self, browser) -> None:  # noqa: ANN001
        self.context = browser.new_context()
        self.failures: list[str] = []
        self.context.on("page", self.watch)
        self.page: Page = self.context.new_page()

    def watch(self, page: Page) -> None:
        """Every page of the context (popups too: the Web Viewer opens in one)."""
        page.on("response", lambda r: self.failures.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        # Not "aborted": a request cut short by a navigation (a download, a form sent), not refused.
        page.on("requestfailed", lambda r: self.failures.append(f"failed {r.url} {r.failure}")
                if r.failure != "net::ERR_ABORTED" else None)
        page.on("console", lambda m: self.failures.append(f"console: {m.text} at {m.location.get('url')}")
                if m.type == "error" else None)
        page.on("dialog", lambda d: (self.failures.append(f"dialog: {d.message}"), d.dismiss()))

    def sign_in(self, username: str, password: str) -> None:
        self.page.fill('input[name="username"]', username)
        self.page.fill('input[name="password"]', password)
        self.page.click('button[type="submit"]')

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


def _open(watched: Watched, srv: Server, page_id: str, uuid: str) -> None:
    watched.page.goto(srv.url(f"/app/explorer.html#{page_id}?uuid={uuid}"))
    try:
        watched.page.wait_for_selector(f"#{page_id}.ui-page-active #{page_id}-info li", timeout=15000)
    except PlaywrightTimeout:
        # Say what the page saw (refusals, errors), not only that it timed out.
        raise AssertionError(f"{page_id} page not shown at {watched.page.url}; seen: {watched.failures}") from None


def _visible(page: Page, selector: str) -> bool:
    return any(element.is_visible() for element in page.query_selector_all(selector))


@pytest.mark.parametrize("username", ["drview", "drdown"])
def test_a_doctor_sees_only_what_their_level_allows(ui_server: Server, browser, patient, username):
    watched = Watched(browser)
    try:
        watched.page.goto(ui_server.url("/app/explorer.html"))
        watched.page.wait_for_url(SIGN_IN)
        watched.sign_in(username, PASSWORD)
        watched.page.wait_for_url("**/app/explorer.html")
        watched.page.wait_for_selector("#lookup.ui-page-active .gate-bar")
        watched.shot(f"{username}-lookup")
        shown = [s for s in ADMIN_ONLY if _visible(watched.page, s)]
        assert shown == [] and not _visible(watched.page, ".warning-insecure"), shown
        assert watched.page.get_attribute("#lookup #gate-home", "href") == "/gate/doctor"  # a doctor's home
        can_download = LEVEL_OF[username] != "view_only"
        for page_id in ("patient", "study", "series", "instance"):
            _open(watched, ui_server, page_id, patient[page_id])
            page = watched.page
            watched.shot(f"{username}-{page_id}")
            assert not _visible(page, ".warning-insecure"), page_id
            assert page.is_visible(f"#{page_id}.ui-page-active .gate-bar"), page_id
            assert f"Signed in as {username}" in page.inner_text(f"#{page_id}.ui-page-active .gate-bar")
            assert page.is_visible(f"#{page_id}.ui-page-active #gate-sign-out")
            shown = [s for s in ADMIN_ONLY + DELETES if _visible(page, s)]
            assert shown == [], (page_id, shown)
            downloads = [s for s in DOWNLOADS if s.startswith(f"#{page_id}-") or s == "#instance-download-dicom"
                         and page_id == "instance"]
            assert all(_visible(page, s) == can_download for s in downloads), (page_id, downloads)
            assert _visible(page, "#gate-open-ohif") == (page_id == "study"), page_id  # any level views
        # What the level allows works: the viewer opens from the series page; a download downloads.
        _open(watched, ui_server, "series", patient["series"])
        with watched.page.expect_popup() as popup:
            watched.page.click("#series.ui-page-active a:has-text('Orthanc Web Viewer')")
        viewer = popup.value
        with viewer.expect_response(lambda r: "/web-viewer/instances/" in r.url, timeout=20000) as image:
            viewer.wait_for_load_state()
        assert image.value.status == 200
        viewer.wait_for_timeout(1000)
        viewer.screenshot(path=str(ARTIFACTS / f"{username}-web-viewer.png"))
        # The viewer's "Download DICOM" fetches the original file: shown from the download level on.
        viewer.click("#open-toolbar")
        viewer.wait_for_selector('.jsPanel button[title="Series information"]', state="visible")
        viewer.screenshot(path=str(ARTIFACTS / f"{username}-web-viewer-toolbar.png"))
        assert _visible(viewer, 'button[title="Download DICOM"]') == can_download
        if can_download:
            _open(watched, ui_server, "study", patient["study"])
            with watched.page.expect_download() as download:
                watched.page.click("#study-archive")
            assert download.value.suggested_filename.endswith(".zip")
            assert download.value.failure() is None
        assert watched.failures == [], "\n".join(watched.failures)
    finally:
        watched.close()


def test_an_admin_keeps_every_button_and_no_banner(ui_server: Server, browser, patient):
    watched = Watched(browser)
    try:
        watched.page.goto(ui_server.url("/app/explorer.html"))
        watched.sign_in(ADMIN, ADMIN_PASSWORD)
        watched.page.wait_for_url("**/app/explorer.html")
        _open(watched, ui_server, "study", patient["study"])
        watched.shot("admin-study")
        page = watched.page
        assert not _visible(page, ".warning-insecure")
        for selector in ("#study-store", "#study-anonymize", "#study-archive", "#study-media", "#study-delete",
                         "#stow-study", 'a[href="#upload"]', 'a[href="#jobs"]'):
            assert _visible(page, selector), selector
        assert f"Signed in as {ADMIN}" in page.inner_text("#study.ui-page-active .gate-bar")
        # "Open in OHIF" once, on the study; a series keeps the Web Viewer plugin's own button, once.
        assert _visible(page, "#gate-open-ohif") and page.locator("a:has-text('Open in OHIF')").count() == 1
        link = page.get_attribute("#gate-open-ohif", "href")
        assert link == f"../ohif/viewer?StudyInstanceUIDs={patient['study_uid']}", link
        _open(watched, ui_server, "series", patient["series"])
        watched.shot("admin-series")
        assert page.locator("a:has-text('Orthanc Web Viewer')").count() == 1
        assert _visible(page, "#series.ui-page-active a:has-text('Orthanc Web Viewer')")
        assert not _visible(page, "#gate-open-ohif")
        assert watched.failures == [], "\n".join(watched.failures)
    finally:
        watched.close()


@pytest.mark.parametrize("cookie", [None, "expired-or-unknown-session"])
def test_a_bookmarked_explorer_url_without_a_session_signs_in_and_comes_back(ui_server: Server, browser, patient,
                                                                             cookie):
    watched = Watched(browser)
    try:
        if cookie:
            watched.context.add_cookies([{"name": "gate_session", "value": cookie, "url": ui_server.url("/")}])
        bookmark = ui_server.url(f"/app/explorer.html#study?uuid={patient['study']}")
        watched.page.goto(bookmark)
        watched.page.wait_for_url(SIGN_IN)
        watched.shot(f"bookmark-{'stale' if cookie else 'none'}-sign-in")
        watched.sign_in("drview", PASSWORD)
        watched.page.wait_for_url(bookmark)
        watched.page.wait_for_selector("#study.ui-page-active #study-info li", timeout=15000)
        watched.shot(f"bookmark-{'stale' if cookie else 'none'}-back")
        assert watched.failures == [], "\n".join(watched.failures)
    finally:
        watched.close()


def test_sign_out_from_explorer_ends_the_session(ui_server: Server, browser):
    watched = Watched(browser)
    try:
        watched.page.goto(ui_server.url("/app/explorer.html"))
        watched.sign_in("drdown", PASSWORD)
        watched.page.wait_for_url("**/app/explorer.html")
        watched.page.click("#lookup #gate-sign-out")
        watched.page.wait_for_url(re.compile(r".*/gate/login\?signed_out=1$"))  # saying so
        watched.page.goto(ui_server.url("/app/explorer.html"))
        watched.page.wait_for_url(SIGN_IN)
        assert watched.failures == [], "\n".join(watched.failures)
    finally:
        watched.close()


def test_pages_redirect_but_api_calls_keep_refusing(ui_server: Server, patient):
    for path, back in (("/app/explorer.html", "/app/explorer.html"),
                       (f"/web-viewer/app/viewer.html?series={patient['series']}",
                        f"/web-viewer/app/viewer.html%3Fseries%3D{patient['series']}")):
        answer = ui_server.anonymous("GET", path)
        assert answer.status_code == 303 and answer.headers["Location"] == f"/gate/login?next={back}", path
        assert "no-store" in answer.headers["Cache-Control"]
    assert ui_server.anonymous("GET", "/patients").status_code == 403
    assert ui_server.anonymous("GET", "/app/explorer.js").status_code == 403
    assert ui_server.anonymous("GET", f"/web-viewer/series/{patient['series']}").status_code == 403
    assert ui_server.anonymous("GET", "/gate/api/me").status_code == 401
    stale = requests.get(ui_server.url("/app/explorer.html"), cookies={"gate_session": "stale"}, timeout=10,
                         allow_redirects=False)
    assert stale.status_code == 303


def test_signed_in_the_pages_are_orthancs_own(ui_server: Server, tmp_path: Path):
    plain = OrthancProcess(tmp_path / "plain", script=None).start()
    try:
        for path in ("/app/explorer.html", "/web-viewer/app/viewer.html"):
            ours = ui_server.admin("GET", path)
            theirs = requests.get(plain.url(path), timeout=10)
            assert ours.status_code == theirs.status_code == 200, path
            assert ours.content == theirs.content, path
            assert ours.headers["Content-Type"].startswith("text/html")
    finally:
        plain.stop()


def test_me_answers_the_level_held_on_a_resource(ui_server: Server, patient):
    session = requests.Session()
    answer = session.post(ui_server.url("/gate/login"), json={"username": "drdown", "password": PASSWORD}, timeout=10)
    assert answer.status_code == 200
    me = session.get(ui_server.url("/gate/api/me"), timeout=10).json()
    assert me["home"] == "/gate/doctor" and me["csrf_token"] == answer.json()["csrf_token"]
    for kind, key in (("patients", "patient"), ("studies", "study"), ("series", "series"), ("instances", "instance")):
        access = session.get(ui_server.url(f"/gate/api/me?{kind}={patient[key]}"), timeout=10).json()["access"]
        assert access["level"] == "download", kind
    others = [p for pid, p in catalog(ui_server).items() if pid != GRANTED]
    assert session.get(ui_server.url(f"/gate/api/me?studies={others[0].studies[0].oid}"),
                       timeout=10).json()["access"]["level"] is None
    odd = session.get(ui_server.url("/gate/api/me?studies=../tools/find"), timeout=10)
    assert odd.json()["access"]["level"] is None
    assert session.get(ui_server.url("/gate/api/me?studies=a&series=b"), timeout=10).status_code == 400

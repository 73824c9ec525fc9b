"""Orthanc Explorer 2 in front of the Gate, in Debian's Chromium (Playwright), on the 1.12 lane.

OE2 needs Orthanc 1.11 or later and is in no package registry these machines reach: these tests
run only where a built OE2 plugin is given (GATE_OE2_PLUGIN, the version policies/explorer2.py is
written for), which scripts/lane-1.12.sh does when called with OE2_PLUGIN=... . They are marked
`oe2`; `make test` and the lane without OE2 deselect them, and run without the plugin they fail.

Shown: a doctor sees exactly their studies, only the buttons their level allows, who is signed in,
and a sign-out; OE2 makes no request the Gate refuses while they browse; a browser without a session
opening /ui/app/ lands on sign-in and comes back; the Share button makes one of the Gate's share
links, which stops working once revoked; the admin's OE2 keeps every button, and the admin's
configuration document is OE2's own but for what the Gate deliberately changes. Screenshots go to
var/artifacts/oe2/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Page

from tests.conftest import ADMIN, ADMIN_PASSWORD, Server, start_gate, upload_dicomdir
from tests.harness import PLUGINS, REPO, OrthancProcess
from tests.integration.grants_support import PASSWORD, catalog, doctors_granted

pytestmark = pytest.mark.oe2

ARTIFACTS = REPO / "var" / "artifacts" / "oe2"
OE2_PLUGIN = os.environ.get("GATE_OE2_PLUGIN", "")
GRANTED = "77654033"  # Doe^Archibald: two studies in pydicom's DICOMDIR set
LEVEL_OF = {"drview": "view_only", "drdown": "download", "drshare": "share"}
SIGN_IN = re.compile(r".*/gate/login\?next=.*")
SECTION = {"Enable": True, "IsDefaultOrthancUI": False}
# OE2's buttons, by their icons (OE2 1.14.1's ResourceButtonGroup.vue and SideBar.vue).
STUDY_BUTTONS = {"delete": "i.bi-trash", "modify": "i.bi-pencil", "anonymize": "i.bi-person-slash",
                 "add_series": "i.bi-file-earmark-plus", "download": "i.bi-download", "share": "i.bi-share"}
SIDE_BAR = {"upload": "i.fa-file-upload", "jobs": "i.fa-bars-progress", "settings": "i.fa-cogs"}
# What each level may use: the rest must not show.
ALLOWED = {"drview": set(), "drdown": {"download"}, "drshare": {"download", "share"}}


def _plugins() -> list[str]:
    if not OE2_PLUGIN or not Path(OE2_PLUGIN).is_file():
        pytest.fail("the oe2 tests need GATE_OE2_PLUGIN=/path/to/libOrthancExplorer2.so (1.14.1); "
                    "deselect them with -m 'not oe2' where there is none")
    # The Python plugin first: the first plugin to register a route answers it.
    return [f"{PLUGINS}/libOrthancPython.so", f"{PLUGINS}/libOrthancDicomWeb.so",
            f"{PLUGINS}/libOrthancWebViewer.so", OE2_PLUGIN]


@pytest.fixture(scope="module")
def oe2_server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_gate(tmp_path_factory.mktemp("oe2"), extra={"Plugins": _plugins(), "OrthancExplorer2": SECTION})
    try:
        upload_dicomdir(srv)
        doctors_granted(srv, LEVEL_OF, GRANTED)
        yield srv
    finally:
        srv.proc.stop()


class Browsing:
    """A fresh browser context, with every refused or failed request and console error it sees."""

    def __init__(self, browser) -> None:  # noqa: ANN001
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.failures: list[str] = []
        self.page: Page = self.context.new_page()
        self.page.on("response", lambda r: self.failures.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        self.page.on("console", lambda m: self.failures.append(f"console: {m.text}") if m.type == "error" else None)

    def sign_in(self, username: str, password: str) -> None:
        self.page.wait_for_url(SIGN_IN)
        self.page.fill('input[name="username"]', username)
        self.page.fill('input[name="password"]', password)
        self.page.click('button[type="submit"]')

    def shot(self, name: str, full_page: bool = True) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)

    def visible(self, selector: str) -> bool:
        return any(element.is_visible() for element in self.page.query_selector_all(selector))

    def open_app(self, srv: Server, username: str, password: str) -> None:
        self.page.goto(srv.url("/ui/app/"))
        self.sign_in(username, password)
        self.page.wait_for_url("**/ui/app/")
        self.page.wait_for_selector("tr.study-row-collapsed", timeout=20000)

    def open_first_study(self) -> None:
        self.page.query_selector_all("tr.study-row-collapsed")[0].query_selector("td:nth-child(3)").click()
        self.page.wait_for_selector("tr.study-details-expanded", timeout=15000)
        self.page.wait_for_timeout(500)  # its buttons come with its series

    def close(self) -> None:
        self.context.close()


def test_without_a_session_the_app_sends_to_sign_in_and_its_documents_are_refused(oe2_server: Server):
    for path in ("/ui/app/", "/ui/app", "/ui/app/filtered-studies?StudyDate=20200101"):
        answer = requests.get(oe2_server.url(path), allow_redirects=False, timeout=10)
        assert answer.status_code in (302, 303, 307), (path, answer.status_code)
        assert answer.headers["Location"].startswith("/gate/login?next=/ui/app"), path
    for path in ("/ui/api/configuration", "/ui/api/pre-login-configuration", "/ui/app/assets/x.js"):
        assert requests.get(oe2_server.url(path), timeout=10).status_code in (401, 403), path


def test_each_doctor_gets_a_document_for_their_level(oe2_server: Server):
    for username, level in LEVEL_OF.items():
        session = requests.Session()
        signed = session.post(oe2_server.url("/gate/login"), json={"username": username, "password": PASSWORD},
                              timeout=10)
        assert signed.status_code == 200, signed.text
        document = session.get(oe2_server.url("/ui/api/configuration"), timeout=10).json()
        options = document["UiOptions"]
        assert document["Profile"]["user-id"] == username
        assert options["EnableDownloadZip"] is (level != "view_only")
        assert options["EnableShares"] is (level == "share")
        assert not any(options[s] for s in ("EnableUpload", "EnableDeleteResources", "EnableModification",
                                            "EnableAnonymization", "EnableSettings", "EnableJobsList"))
        assert "dicom-web" not in document["Plugins"]  # so OE2 does not ask for the remote servers
        assert session.get(oe2_server.url("/tools/labels"), timeout=10).json() == []


def test_the_admins_document_is_oe2s_own_but_for_the_gates_parts(oe2_server: Server, tmp_path: Path):
    """The same OE2 and section without the Gate: every key of its document the Gate did not mean
    to change is the same in the admin's."""
    plugins = [p for p in _plugins() if "Python" not in p]
    plain = OrthancProcess(tmp_path / "plain", script=None, extra={"Plugins": plugins, "OrthancExplorer2": SECTION})
    plain.start()
    try:
        own = requests.get(plain.url("/ui/api/configuration"), timeout=10).json()
    finally:
        plain.stop()
    ours = oe2_server.admin("GET", "/ui/api/configuration").json()
    # What policies/explorer2.py sets on purpose (and says why); OE2 sets no EnablePermissionsEdition
    # without the authorization plugin, which the app reads as off.
    changed = {"EnableShares", "EnableAuditLogs", "EnableChangePassword", "EnablePermissionsEdition"}
    differ = sorted(key for key in set(own["UiOptions"]) | set(ours["UiOptions"])
                                if key not in changed and own["UiOptions"].get(key) != ours["UiOptions"].get(key))
    assert differ == []
    assert ours["UiOptions"]["EnableShares"] is True and ours["Profile"]["user-id"] == ADMIN
    for key in ("Tokens", "AdvancedOptions", "HasCustomLogo", "Keycloak"):
        assert ours[key] == own[key], key
    # Plugins: the same, with the Python plugin (which the plain server has not) and the stand-in
    # for the authorization plugin that shows the Share button in addition.
    assert ours["Plugins"]["authorization"]["Enabled"] is True
    assert {k: v for k, v in ours["Plugins"].items() if k not in ("python", "authorization")} == own["Plugins"]


@pytest.mark.parametrize("username", sorted(LEVEL_OF))
def test_a_doctor_sees_their_studies_and_only_their_buttons(oe2_server: Server, browser, username):
    patients = catalog(oe2_server)
    mine = patients[GRANTED]
    browsing = Browsing(browser)
    try:
        browsing.open_app(oe2_server, username, PASSWORD)
        page = browsing.page
        rows = page.query_selector_all("tr.study-row-collapsed")
        assert len(rows) == len(mine.studies)
        listed = page.inner_text("table")
        assert GRANTED in listed
        assert [pid for pid in patients if pid != GRANTED and pid in listed] == []
        assert [name for name, s in SIDE_BAR.items() if browsing.visible(s)] == []
        # Signed in as: the profile entry shows the name, with the sign-out under it.
        assert page.is_visible(f"li:has-text('{username}')")
        browsing.shot(f"{username}-list")
        browsing.open_first_study()
        shown = {name for name, selector in STUDY_BUTTONS.items()
                 if browsing.visible(f"tr.study-details-expanded {selector}")}
        browsing.shot(f"{username}-study")
        assert shown == ALLOWED[username], shown
        assert browsing.failures == []  # nothing OE2 asked for was refused or failed
    finally:
        browsing.close()


def test_sign_out_and_an_ended_session(oe2_server: Server, browser):
    browsing = Browsing(browser)
    try:
        browsing.open_app(oe2_server, "drdown", PASSWORD)
        page = browsing.page
        page.click("li:has-text('drdown')")
        page.click("a:has(i.fa-arrow-right-from-bracket)")
        page.wait_for_url("**/gate/login*")
        browsing.shot("signed-out")
        page.goto(oe2_server.url("/ui/app/"))
        page.wait_for_url(SIGN_IN)  # the session is over: the app is not served
        # A session that ends while the app is open: its next request takes the browser to sign in.
        browsing.sign_in("drdown", PASSWORD)
        page.wait_for_url("**/ui/app/")
        page.wait_for_selector("tr.study-row-collapsed", timeout=20000)
        browsing.context.clear_cookies()
        page.reload()
        page.wait_for_url(SIGN_IN)
        browsing.shot("expired-session")
    finally:
        browsing.close()


XHR = "(path) => { const x = new XMLHttpRequest(); x.open('GET', path); x.send(); }"


def test_a_refusal_is_said_and_an_ended_session_signs_in_again(oe2_server: Server, browser):
    """OE2 ignores 401 and 403; the Gate's script does not."""
    other = next(data for pid, data in catalog(oe2_server).items() if pid != GRANTED).studies[0].oid
    browsing = Browsing(browser)
    try:
        browsing.open_app(oe2_server, "drview", PASSWORD)
        page = browsing.page
        page.evaluate(XHR, f"../../studies/{other}")
        page.wait_for_selector("#gate-refusal", state="visible", timeout=10000)
        assert page.inner_text("#gate-refusal").startswith("Not allowed")
        browsing.shot("refused", full_page=False)
        browsing.context.clear_cookies()  # as when the session ends on the server
        page.evaluate(XHR, "../../statistics")
        page.wait_for_url(SIGN_IN, timeout=10000)
        assert "next=%2Fui%2Fapp%2F" in page.url or "next=/ui/app/" in page.url, page.url
    finally:
        browsing.close()


def test_share_makes_one_of_our_links_which_revoking_stops(oe2_server: Server, browser):
    browsing = Browsing(browser)
    try:
        browsing.open_app(oe2_server, "drshare", PASSWORD)
        page = browsing.page
        browsing.open_first_study()
        page.click("tr.study-details-expanded button:has(i.bi-share)")
        page.wait_for_function(
            "() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('/share/'))", timeout=15000)
        link = next(t for t in (e.input_value() for e in page.query_selector_all("textarea")) if "/share/" in t)
        page.wait_for_timeout(500)  # the dialog fades in
        browsing.shot("share-dialog", full_page=False)
    finally:
        browsing.close()
    # The link is made on Gate.PublicUrl (here its default, http://localhost:{HttpPort}).
    assert link.strip().startswith(f"http://localhost:{oe2_server.proc.http_port}/share/"), link
    url = oe2_server.url(urlsplit(link.strip()).path)
    landing = requests.get(url, timeout=10)
    assert landing.status_code == 200 and "no-referrer" in landing.headers.get("Referrer-Policy", "")
    shares = oe2_server.admin("GET", "/gate/api/shares").json()["shares"]
    made = [s for s in shares if s.get("created_by") == "drshare"]
    assert len(made) == 1, shares
    assert oe2_server.admin("DELETE", f"/gate/api/shares/{made[0]['id']}").status_code == 200
    assert requests.get(url, timeout=10).status_code == 410


def test_the_admins_oe2_keeps_every_button(oe2_server: Server, browser):
    browsing = Browsing(browser)
    try:
        browsing.open_app(oe2_server, ADMIN, ADMIN_PASSWORD)
        assert [name for name, s in SIDE_BAR.items() if not browsing.visible(s)] == []
        browsing.open_first_study()
        missing = [name for name, selector in STUDY_BUTTONS.items()
                   if not browsing.visible(f"tr.study-details-expanded {selector}")]
        browsing.shot("admin-study")
        assert missing == []
    finally:
        browsing.close()


def test_orthanc_with_oe2_and_the_gate_stops_cleanly(oe2_server: Server):
    """Last in this module: SIGTERM with OE2 loaded beside the Gate ends with exit code 0."""
    oe2_server.proc.stop()
    assert oe2_server.proc.returncode == 0, oe2_server.proc.log_tail()

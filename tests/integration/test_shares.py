"""Patient share links on a real Orthanc: created by the practice (/gate/api/shares), opened by the
patient (/share/...) in a phone's Chromium in English, Afrikaans and isiZulu, and everything that
must stop a link or keep it to its own studies: the download limit, single-use download tickets, a
one-time link, revoking, wrong ids, wrong passwords, wrong links. Messages go to a real SMTP server
and an SMS sink; a 100 MB study streams as a ZIP while Orthanc's memory stays put.

One Gate for the module (pydicom's DICOMDIR set and a generated 200-slice CT). The throttling test
runs last: it blocks the whole address. Screenshots and figures go to var/artifacts/shares/."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile

import pydicom
import pytest
import requests

from plugin import i18n
from tests.conftest import DOCTOR, Server, audit_rows, start_gate, upload_dicomdir, wait_for_audit
from tests.harness import REPO, storescu
from tests.integration.grants_support import PatientData, Resource, catalog, grant
from tests.integration.share_support import (
    PREVIEW,
    RssSampler,
    Visitor,
    cached_ct_study,
    error_page_type,
    random_token,
    rss_kib,
    ticket_of,
    wait_until,
)

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "var" / "artifacts" / "shares"
PERF_LOG = ARTIFACTS / "perf.log"
PHONE = {"width": 360, "height": 740}
PRACTICE = "Umhlanga Radiology"
PUBLIC_URL = "https://pacs.umhlanga-radiology.co.za"
SMS_KEY = "clickatell-share-key"
BAD_LINKS = 8
PASSWORD = "Nomsa's scan 2026"
MIB = 1024 * 1024
# From plugin/translations/{af,zu}/LC_MESSAGES/messages.po (English is the source language).
OPEN_BUTTON = {"en": "View my images", "af": "Bekyk my beelde", "zu": "Buka izithombe zami"}
DOWNLOAD_BUTTON = {"en": "Download all (ZIP)", "af": "Laai alles af (ZIP)", "zu": "Landa konke (ZIP)"}
DOCTOR_ROLE = {"en": "Doctor", "af": "Dokter", "zu": "Udokotela"}
GONE_TITLE = "This link no longer works"
NOT_FOUND_TITLE = "This link is not valid"

# Every token this module was given: none may appear in a log line or an audit row (test 15).
TOKENS: list[str] = []

# pydicom's DICOMDIR set, by PatientID and StudyInstanceUID.
PETER, ARCHIBALD = "98890234", "77654033"
PETER_CT = "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.1"
PETER_MR_SMALL = "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.427"  # 2 images
PETER_MR_4 = "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.133"
PETER_MR_11 = "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.1"
ARCHIBALD_CR = "1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.1"
ARCHIBALD_CT = "1.3.6.1.4.1.5962.1.1.0.0.0.1196530851.28319.0.1"


# -- the server ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, mailbox, sms):
    """The server with the DICOMDIR set (REST) and the 200-slice CT (storescu); what it holds."""
    workdir = tmp_path_factory.mktemp("shares")
    (workdir / "clickatell.key").write_text(SMS_KEY + "\n")
    config = {
        "PracticeName": PRACTICE, "PublicUrl": PUBLIC_URL,
        "Smtp": {"Host": "127.0.0.1", "Port": mailbox[1], "Security": "none", "From": "pacs@umhlanga-radiology.co.za"},
        "Sms": {"Gateway": "clickatell", "Url": f"http://127.0.0.1:{sms.port}/messages",
                "ApiKeyFile": str(workdir / "clickatell.key")},
        "Outbox": {"RetryBaseSeconds": 0.2, "RetryMaxSeconds": 1, "PollSeconds": 0.2},
        "Shares": {"PatientAccessLog": True, "BadLinksPerAddress": BAD_LINKS, "ContactPhone": "+27 31 555 0100",
                   "ContactEmail": "info@umhlanga-radiology.co.za"},
    }
    srv = start_gate(workdir, gate=config)
    try:
        upload_dicomdir(srv)
        ct_uid, files = cached_ct_study()
        pushed = storescu(srv.proc.dicom_port, files)
        assert pushed.returncode == 0, pushed.stderr
        patients = catalog(srv)
        studies = {s.uid: s for p in patients.values() for s in p.studies}
        yield {"srv": srv, "patients": patients, "studies": studies, "ct_uid": ct_uid}
    finally:
        srv.proc.stop()


@pytest.fixture(scope="module")
def srv(gate) -> Server:
    return gate["srv"]


def create(srv: Server, study_uids: list[str], expect: int = 201, via=None, **fields) -> dict:  # noqa: ANN001
    """POST /gate/api/shares (as the admin unless `via` is given); the answer's JSON."""
    call = via or srv.admin
    answer = call("POST", "/gate/api/shares", json={"studies": study_uids, **fields})
    assert answer.status_code == expect, (answer.status_code, answer.text[:400])
    body = answer.json()
    if expect == 201:
        assert len(body["token"]) == 43 and body["url"] == f"{PUBLIC_URL}/share/{body['token']}"
        TOKENS.append(body["token"])
    return body


def share_info(srv: Server, share_id: int) -> dict:
    answer = srv.admin("GET", f"/gate/api/shares/{share_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def sop_uids(srv: Server, study_oid: str) -> set[str]:
    answer = srv.admin("GET", f"/studies/{study_oid}/instances")
    assert answer.status_code == 200, answer.text
    return {i["MainDicomTags"]["SOPInstanceUID"] for i in answer.json()}


def zip_sop_uids(archive: zipfile.ZipFile) -> list[str]:
    return [pydicom.dcmread(io.BytesIO(archive.read(name)), stop_before_pixels=True).SOPInstanceUID
            for name in archive.namelist() if not name.endswith("/")]


def fetch_ticketed(srv: Server, target: str, ticket: str, **kwargs) -> requests.Response:
    """GET a core route carrying only a download ticket (no other cookie, no credentials)."""
    return requests.get(srv.url(target), headers={"Cookie": f"gate_download={ticket}"}, timeout=120,
                        allow_redirects=False, **kwargs)


def perf_log(line: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with PERF_LOG.open("a") as log:
        log.write(f"{dt.datetime.now().isoformat(timespec='seconds')} {line}\n")
    print(line)


def shot(tab, name: str) -> None:  # noqa: ANN001 - a Playwright page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def first_instance(patient: PatientData, study_uid: str) -> Resource:
    return next(i for i in patient.instances if i.study_uid == study_uid)


PREVIEW_LOADED = "[...document.images].some(i => i.complete && i.naturalWidth > 0)"


# -- 1. in a phone's browser, in three languages ---------------------------------------------------------

@pytest.mark.parametrize(("lang", "study_uid"), [("en", ARCHIBALD_CR), ("af", ARCHIBALD_CT), ("zu", PETER_MR_4)])
def test_phone_opens_a_password_share_in_its_language_and_downloads_exactly_the_study(gate, browser, lang,
                                                                                      study_uid):
    srv = gate["srv"]
    share = create(srv, [study_uid], password=PASSWORD, language=lang)
    study_oid = share["studies"][0]["orthanc_id"]
    context = browser.new_context(viewport=PHONE, accept_downloads=True)
    failures: list[str] = []
    try:
        tab = context.new_page()
        tab.on("response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        tab.on("console", lambda m: failures.append(f"console: {m.text}") if m.type == "error" else None)
        landing = tab.goto(srv.url(f"/share/{share['token']}"))
        assert landing.status == 200 and landing.headers["referrer-policy"] == "no-referrer"
        assert tab.get_attribute("html", "lang") == lang
        open_button = tab.get_by_role("button", name=OPEN_BUTTON[lang])
        assert open_button.is_visible()
        assert PRACTICE in tab.inner_text("header")
        shot(tab, f"{lang}-landing")
        assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        tab.fill("#password", PASSWORD)
        open_button.click()
        tab.wait_for_url("**/share/view")
        # Polled from here: the page's CSP (no eval) refuses wait_for_function's predicate.
        assert wait_until(lambda: tab.evaluate(PREVIEW_LOADED), seconds=15), "no preview image loaded"
        assert tab.evaluate("document.images[0].naturalWidth") > 0
        shot(tab, f"{lang}-studies")
        assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        with tab.expect_download() as download:
            tab.get_by_role("button", name=DOWNLOAD_BUTTON[lang]).click()
        assert download.value.failure() is None
        with zipfile.ZipFile(download.value.path()) as archive:
            in_zip = zip_sop_uids(archive)
        assert len(in_zip) == len(set(in_zip))
        assert set(in_zip) == sop_uids(srv, study_oid)
        assert failures == [], "\n".join(failures)
    finally:
        context.close()
    assert share_info(srv, share["id"])["downloads"] == 1


# -- 2. page weight and a slow 3G connection ------------------------------------------------------------

FIRST_PREVIEW_PROBE = """
document.addEventListener('load', (event) => {
  const target = event.target;
  if (target && target.tagName === 'IMG' && target.naturalWidth > 0 && window.__firstPreview === undefined) {
    window.__firstPreview = performance.now();
  }
}, true);
"""


def test_studies_page_weighs_under_100_kb_and_first_preview_time_on_slow_3g_is_recorded(gate, browser):
    srv = gate["srv"]
    share = create(srv, [PETER_CT])  # (Citizen^Jan's CT instances hold no pixel data: no preview)
    context = browser.new_context(viewport=PHONE)
    try:
        tab = context.new_page()
        tab.add_init_script(FIRST_PREVIEW_PROBE)
        cdp = context.new_cdp_session(tab)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 400,
                                                      "downloadThroughput": 400 * 1024 / 8,
                                                      "uploadThroughput": 400 * 1024 / 8})
        types: dict[str, str] = {}
        urls: dict[str, str] = {}
        sizes: dict[str, float] = {}
        cdp.on("Network.requestWillBeSent", lambda e: (types.__setitem__(e["requestId"], e.get("type", "")),
                                                      urls.__setitem__(e["requestId"], e["request"]["url"])))
        cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]))
        tab.goto(srv.url(f"/share/{share['token']}"))
        types.clear()
        urls.clear()
        sizes.clear()
        tab.get_by_role("button", name=OPEN_BUTTON["en"]).click()
        tab.wait_for_url("**/share/view")
        first_preview_ms = wait_until(lambda: tab.evaluate("window.__firstPreview"), seconds=30)
        assert first_preview_ms, "no preview image loaded"
        tab.wait_for_load_state("load")
        # Playwright hands CDP events over only during its own calls: evaluate() lets them in.
        wait_until(lambda: tab.evaluate("1") and set(urls) <= set(sizes), seconds=10)
        page_bytes = sum(size for rid, size in sizes.items() if types.get(rid) != "Image")
        images = [urls[rid] for rid in sizes if types.get(rid) == "Image"]
        assert images and all("/share/preview/" in url or url.endswith("favicon.svg") for url in images), urls
        documents = [urls[rid] for rid in sizes if types.get(rid) == "Document"]
        assert any(url.endswith("/share/view") for url in documents), documents
        assert any(url.endswith("/gate/static/share.css") for url in urls.values()), urls
    finally:
        context.close()
    perf_log(f"share_page_bytes={int(page_bytes)} first_preview_ms_3g={first_preview_ms:.0f}")
    assert page_bytes < 100 * 1024, (page_bytes, {urls[r]: sizes[r] for r in sizes})


# -- 3. the landing page counts nothing ----------------------------------------------------------------------

def test_landing_gets_and_a_link_scanner_count_no_open_and_no_download(gate):
    srv = gate["srv"]
    share = create(srv, [PETER_MR_SMALL], password=PASSWORD)
    instance = first_instance(gate["patients"][PETER], PETER_MR_SMALL)
    for lang in ("en", "af", "zu"):
        landing = requests.get(srv.url(f"/share/{share['token']}"), params={"lang": lang}, timeout=10)
        assert landing.status_code == 200 and OPEN_BUTTON[lang] in landing.text
        assert landing.headers["Referrer-Policy"] == "no-referrer"
        assert share["token"] not in landing.text  # the form posts to its own address
    scanner = requests.get(srv.url(f"/share/preview/{instance.oid}"), timeout=10, allow_redirects=False)
    # An error page: HTML, or from Orthanc 1.12.2 its text (the core labels error bodies text/plain).
    assert scanner.status_code != 200
    assert scanner.headers.get("Content-Type", "").startswith(error_page_type(srv))
    head = requests.head(srv.url(f"/share/{share['token']}"), timeout=10)
    assert head.status_code < 500
    info = share_info(srv, share["id"])
    assert (info["opens"], info["downloads"], info["state"]) == (0, 0, "active")


# -- 4. the download limit -------------------------------------------------------------------------------------

def test_max_downloads_two_allows_two_zips_then_410(gate):
    srv = gate["srv"]
    share = create(srv, [PETER_MR_SMALL], max_downloads=2)
    study_oid = share["studies"][0]["orthanc_id"]
    visitor = Visitor(srv)
    visitor.opened(share["token"])
    csrf = visitor.csrf()
    for _ in range(2):
        started = visitor.download(csrf)
        assert started.status_code == 303 and started.headers["Location"] == f"/studies/{study_oid}/archive"
        assert started.headers["Referrer-Policy"] == "no-referrer"
        cookie = started.headers["Set-Cookie"]
        assert f"Path=/studies/{study_oid}/archive" in cookie and "Max-Age=60" in cookie and "HttpOnly" in cookie
        archive = fetch_ticketed(srv, started.headers["Location"], ticket_of(started))
        assert archive.status_code == 200, archive.status_code
        with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
            assert set(zip_sop_uids(opened)) == sop_uids(srv, study_oid)
    third = visitor.download(csrf)
    assert third.status_code == 410 and GONE_TITLE in third.text
    assert "gate_download" not in third.headers.get("Set-Cookie", "")
    # That 410 ended the viewing session: its page is the "session ended" one from now on.
    assert visitor.get("/share/view").status_code in (403, 410)
    landing = requests.get(srv.url(f"/share/{share['token']}"), timeout=10)
    assert landing.status_code == 410 and "downloaded as many times as allowed" in landing.text
    info = share_info(srv, share["id"])
    assert (info["downloads"], info["state"]) == (2, "exhausted")


# -- 5. a download ticket opens one archive, once; the session cookie opens no core route -------------------

def test_download_ticket_works_once_for_its_own_archive_and_the_session_cookie_opens_no_core_route(gate):
    srv, patients = gate["srv"], gate["patients"]
    share = create(srv, [PETER_MR_SMALL])
    study_oid = share["studies"][0]["orthanc_id"]
    other_oid = gate["studies"][PETER_MR_4].oid
    visitor = Visitor(srv)
    visitor.opened(share["token"])
    started = visitor.download()
    assert started.status_code == 303, started.text[:300]
    ticket = ticket_of(started)
    first = fetch_ticketed(srv, started.headers["Location"], ticket)
    assert first.status_code == 200 and first.content.startswith(b"PK")
    replay = fetch_ticketed(srv, started.headers["Location"], ticket)
    assert replay.status_code == 403, replay.status_code
    # An unspent ticket does not open another study's archive.
    fresh = visitor.download()
    assert fresh.status_code == 303, fresh.text[:300]
    elsewhere = fetch_ticketed(srv, f"/studies/{other_oid}/archive", ticket_of(fresh))
    assert elsewhere.status_code == 403, elsewhere.status_code
    assert not elsewhere.content.startswith(b"PK")
    # The viewing session's cookie is for /share/ pages only.
    instance = first_instance(patients[PETER], PETER_MR_SMALL)
    session = {"Cookie": f"gate_share={visitor.session_cookie}"}
    for method, path, body in [("GET", f"/studies/{study_oid}", None), ("GET", f"/studies/{study_oid}/archive", None),
                               ("GET", f"/instances/{instance.oid}/file", None), ("GET", "/patients", None),
                               ("GET", f"/instances/{instance.oid}/preview", None),
                               ("POST", "/tools/find", '{"Level": "Study", "Query": {}}')]:
        answer = requests.request(method, srv.url(path), headers=session, data=body, timeout=10,
                                  allow_redirects=False)
        assert answer.status_code in (401, 403), (method, path, answer.status_code)


# -- 6. a one-time link ------------------------------------------------------------------------------------

def test_one_time_link_opens_once_and_a_second_browser_gets_410_while_the_first_keeps_working(gate):
    srv = gate["srv"]
    share = create(srv, [PETER_MR_SMALL], one_time=True)
    first = Visitor(srv)
    page = first.opened(share["token"])
    preview = PREVIEW.search(page.text).group(1)
    second = Visitor(srv)
    landing = second.get(f"/share/{share['token']}")
    opened = second.open(share["token"])
    assert opened.status_code == 410 and GONE_TITLE in opened.text, opened.status_code
    assert "only once" in opened.text and not second.session_cookie
    assert first.get("/share/view").status_code == 200
    assert first.get(preview).status_code == 200
    assert first.download().status_code == 303
    info = share_info(srv, share["id"])
    assert info["opens"] == 1
    # A browser opening a used one-time link is told at once, not asked for nothing.
    assert landing.status_code == 410 and GONE_TITLE in landing.text, landing.status_code


# -- 7. revoking ends an open session --------------------------------------------------------------------

def test_revoke_ends_an_open_viewing_session_at_its_next_request(gate):
    srv = gate["srv"]
    share = create(srv, [PETER_MR_SMALL], password=PASSWORD)
    visitor = Visitor(srv)
    page = visitor.opened(share["token"], PASSWORD)
    preview = PREVIEW.search(page.text).group(1)
    assert visitor.get(preview).status_code == 200
    revoked = srv.admin("DELETE", f"/gate/api/shares/{share['id']}")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    after = visitor.get("/share/view")
    assert after.status_code == 410 and "switched this link off" in after.text
    assert visitor.get(preview).status_code != 200
    assert visitor.open(share["token"], PASSWORD).status_code == 410


# -- 8. a session sees its own studies only ------------------------------------------------------------------

def test_a_session_cannot_reach_other_studies_previews_or_reports_by_changing_ids(gate):
    srv, patients = gate["srv"], gate["patients"]
    share = create(srv, [PETER_CT])
    visitor = Visitor(srv)
    page = visitor.opened(share["token"])
    own = PREVIEW.search(page.text).group(1)
    assert visitor.get(own).status_code == 200
    other_patient = first_instance(patients[ARCHIBALD], ARCHIBALD_CR)
    same_patient = first_instance(patients[PETER], PETER_MR_11)
    other_study_oids = [gate["studies"][PETER_MR_11].oid, gate["studies"][ARCHIBALD_CR].oid]
    probes = [f"/share/preview/{other_patient.oid}", f"/share/preview/{same_patient.oid}",
              *(f"/share/report/{oid}" for oid in other_study_oids),
              "/share/preview/garbage", "/share/preview/" + "0" * 44, "/share/report/garbage",
              f"/share/preview/%2e%2e%2finstances%2f{other_patient.oid}", f"/share/preview/{same_patient.oid}%00",
              f"/share/preview/{same_patient.oid.upper()}", "/share/preview/%2e%2e"]
    for probe in probes:
        answer = visitor.get(probe)
        assert answer.status_code == 404, (probe, answer.status_code)
        assert b"DICM" not in answer.content[:200] and not answer.content.startswith(b"\xff\xd8")
    # Orthanc itself resolves "../" (also as %2F) before any route: these are /patients and an
    # instance's file, refused to a caller with no credentials, never served.
    for probe in ["/share/preview/..%2F..%2Fpatients", "/share/report/..%2F..%2Fpatients",
                  f"/share/preview/..%2F..%2Finstances%2F{other_patient.oid}%2Ffile"]:
        answer = visitor.get(probe)
        assert answer.status_code in (401, 403, 404), (probe, answer.status_code)
        assert b"DICM" not in answer.content[:200] and other_patient.uid.encode() not in answer.content
    actor = f"share:{share['id']}"
    for action in ("share.preview", "share.report"):
        denied = wait_for_audit(srv, "actor = ? AND outcome = 'deny' AND action = ?", (actor, action))
        assert denied, f"no {action} deny row for the share's session"
        assert all(row["roles"] == "patient" and share["token"] not in row["path"] for row in denied)


# -- 9. the recipient's contact details are not in the database file -----------------------------------------

def test_recipient_contact_details_are_not_readable_in_the_database_files(gate):
    srv = gate["srv"]
    share = create(srv, [PETER_MR_SMALL], recipient={"email": "thandi.nkosi@example.co.za", "mobile": "+27821234567"},
                   notify=False)
    assert share["queued_messages"] == 0
    info = share_info(srv, share["id"])
    assert info["recipient"]["email"] and "thandi.nkosi@" not in info["recipient"]["email"]
    assert info["recipient"]["mobile"] and "821234567" not in info["recipient"]["mobile"]
    files = [p for p in (srv.proc.database, srv.proc.database.with_name(srv.proc.database.name + "-wal"))
             if p.exists()]
    assert srv.proc.database in files
    for path in files:
        raw = path.read_bytes()
        for secret in (b"thandi.nkosi", b"thandi.nkosi@example.co.za", b"+27821234567", b"821234567",
                       "thandi.nkosi".encode("utf-16-le")):
            assert secret not in raw, (path.name, secret)


# -- 10. a 100 MB study streams ------------------------------------------------------------------------------

def test_a_100_mb_study_downloads_as_a_zip_while_orthanc_grows_less_than_50_mb(gate):
    srv = gate["srv"]
    share = create(srv, [gate["ct_uid"]])
    visitor = Visitor(srv)
    visitor.opened(share["token"])
    started = visitor.download()
    assert started.status_code == 303, started.text[:300]
    pid = srv.proc.pid
    before = rss_kib(pid)
    received = 0
    with RssSampler(pid) as sampler:
        with fetch_ticketed(srv, started.headers["Location"], ticket_of(started), stream=True) as archive:
            assert archive.status_code == 200, archive.status_code
            for chunk in archive.iter_content(MIB):
                if not received:
                    assert chunk.startswith(b"PK\x03\x04"), chunk[:16]
                received += len(chunk)
    growth = (sampler.peak - before) / 1024
    perf_log(f"share_zip_mb={received / MIB:.1f} orthanc_rss_growth_mb={growth:.1f}")
    assert received >= 100 * MIB, received
    assert growth < 50, f"Orthanc grew by {growth:.1f} MB while streaming a {received / MIB:.0f} MB ZIP"


# -- 11. bad input on create -------------------------------------------------------------------------------

def past(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)).isoformat()


def test_bad_create_requests_are_400_and_a_doctor_needs_the_share_level(gate):
    srv = gate["srv"]
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    for fields in [{"expires_at": past(1)}, {"valid_hours": 721}, {"expires_at": soon, "valid_hours": 2},
                   {"colour": "blue"}, {"password": "x" * 10_000}, {"studies": []},
                   {"studies": [PETER_CT, ARCHIBALD_CR]}]:
        body = {"studies": [PETER_MR_SMALL], **fields}
        answer = srv.admin("POST", "/gate/api/shares", json=body)
        assert answer.status_code == 400, (fields.keys(), answer.status_code, answer.text[:300])
        error = answer.json()
        assert error["error"] and error["message"], error
    long_password = srv.admin("POST", "/gate/api/shares", json={"studies": [PETER_MR_SMALL], "password": "x" * 10_000})
    assert "password" in long_password.json()["message"] and "1024" in long_password.json()["message"]
    grant(srv, DOCTOR, "download", study_uid=PETER_MR_11)
    create(srv, [PETER_MR_11], expect=403, via=srv.doctor)
    create(srv, [ARCHIBALD_CT], expect=404, via=srv.doctor)
    grant(srv, DOCTOR, "share", study_uid=PETER_MR_4)
    made = create(srv, [PETER_MR_4], via=srv.doctor, password=PASSWORD)
    assert made["created_by"] == DOCTOR
    # The landing form with a 10,000-character password: wrong, not a failure of the server.
    posted = requests.post(srv.url(f"/share/{made['token']}"), data={"password": "y" * 10_000, "lang": "en"},
                           timeout=10, allow_redirects=False)
    assert posted.status_code == 200, posted.status_code  # the form again (see the wrong-password test)
    assert "That password is not right" in posted.text and 'name="password"' in posted.text


def test_explorer_2s_share_button_gets_one_of_our_links_made_as_the_signed_in_caller(gate):
    """OE2's Share button (PUT /auth/tokens/{type}, as VIEWERS.md records it) gets one of our links:
    revocable, made as whoever is signed in (never the body's "Username"), for studies they may share."""
    srv = gate["srv"]
    grant(srv, DOCTOR, "share", study_uid=PETER_MR_4)
    grant(srv, DOCTOR, "download", study_uid=PETER_MR_11)
    oid = {uid: srv.admin("POST", "/tools/lookup", data=uid).json()[0]["ID"] for uid in (PETER_MR_4, PETER_MR_11)}

    def button(uid: str, via=srv.doctor, **extra) -> requests.Response:  # noqa: ANN001
        body = {"Resources": [{"OrthancId": oid[uid], "DicomUid": uid, "Level": "study"}],
                "Type": "stone-viewer-publication", "ValidityDuration": 1296000, "Username": "root1", **extra}
        return via("PUT", "/auth/tokens/stone-viewer-publication", json=body)

    answer = button(PETER_MR_4)
    assert answer.status_code == 200, answer.text[:300]
    made = answer.json()
    assert set(made) == {"Token", "Url"} and made["Url"].endswith("/share/" + made["Token"])
    TOKENS.append(made["Token"])
    assert requests.get(srv.url("/share/" + made["Token"]), timeout=10).status_code == 200
    listed = [s for s in srv.admin("GET", "/gate/api/shares").json()["shares"]
              if s["studies"] == [{"study_uid": PETER_MR_4, "orthanc_id": oid[PETER_MR_4]}]]
    assert listed and listed[0]["created_by"] == DOCTOR
    assert button(PETER_MR_11).status_code == 403  # held at download only
    assert button(PETER_MR_4, via=srv.anonymous).status_code == 401
    series = button(PETER_MR_4, Resources=[{"OrthancId": oid[PETER_MR_4], "Level": "series"}])
    assert series.status_code == 400
    assert srv.doctor("GET", "/auth/tokens/stone-viewer-publication").status_code == 405
    assert srv.admin("DELETE", f"/gate/api/shares/{listed[0]['id']}").status_code == 200
    assert requests.get(srv.url("/share/" + made["Token"]), timeout=10).status_code == 410


# -- 12. the link by e-mail and SMS --------------------------------------------------------------------------

def test_a_share_with_a_recipient_is_mailed_and_texted_with_practice_expiry_and_link_and_no_patient(gate, mailbox,
                                                                                                 sms):
    srv = gate["srv"]
    box = mailbox[0]
    mails_before, texts_before = len(box.messages), len(sms.received)
    share = create(srv, [PETER_MR_SMALL], password=PASSWORD, language="af",
                   recipient={"email": "lerato.mokoena@example.co.za", "mobile": "+27 82 765 4321"},
                   consent={"method": "verbal", "note": "at reception"})
    assert share["queued_messages"] == 2
    arrived = wait_until(lambda: len(box.messages) > mails_before and len(sms.received) > texts_before, seconds=20)
    assert arrived, (len(box.messages) - mails_before, len(sms.received) - texts_before)
    wait_until(lambda: False, seconds=0.5)  # nothing more may follow
    assert len(box.messages) == mails_before + 1 and len(sms.received) == texts_before + 1
    [mail], [text] = box.messages[mails_before:], sms.received[texts_before:]
    expires = dt.datetime.fromisoformat(share["expires_at"].replace("Z", "+00:00")).timestamp()
    day = i18n.day(expires, "af")
    link = f"{PUBLIC_URL}/share/{share['token']}"
    assert mail["To"] == "lerato.mokoena@example.co.za" and PRACTICE in mail["Subject"]
    for body in (mail.get_body(preferencelist=("plain",)).get_content(),
                 mail.get_body(preferencelist=("html",)).get_content()):
        assert PRACTICE in body and day in body and link in body, body[:800]
        assert PASSWORD not in body
    assert text["body"]["to"] == ["27827654321"]
    content = text["body"]["content"]
    assert PRACTICE in content and day in content and link in content, content
    study = srv.admin("GET", f"/studies/{share['studies'][0]['orthanc_id']}").json()
    patient = study["PatientMainDicomTags"]
    without_link = content.replace(link, "").upper()
    name_parts = [p for p in re.split(r"[\^ ]+", patient["PatientName"]) if p]
    for secret in (patient["PatientID"], *name_parts, PASSWORD):
        assert secret.upper() not in without_link, (secret, content)


# -- 13. wrong passwords lock the share --------------------------------------------------------------------------

def test_five_wrong_passwords_lock_the_share_even_for_the_right_one_and_are_audited(gate):
    srv = gate["srv"]
    share = create(srv, [PETER_MR_SMALL], password=PASSWORD)
    visitor = Visitor(srv)
    statuses = []
    for attempt in range(6):
        answer = visitor.open(share["token"], f"wrong guess {attempt}")
        statuses.append(answer.status_code)
        if answer.status_code == 403:
            break
    # A wrong password's answer: the form again (200; see the next test).
    assert all(code == 200 for code in statuses[:-1]) and statuses[-1] == 403, statuses
    assert len(statuses) in (5, 6), statuses
    assert int(answer.headers["Retry-After"]) > 0
    assert "Too many wrong passwords" in answer.text
    right = visitor.open(share["token"], PASSWORD)
    assert right.status_code == 403 and "Retry-After" in right.headers and not visitor.session_cookie
    actor = f"share:{share['id']}"
    rows = audit_rows(srv, "actor = ? AND action = 'share.password' AND outcome = 'failure'", (actor,))
    assert len(rows) == 5, [dict(r) for r in rows]
    assert all(share["token"] not in r["path"] for r in rows)
    events = share_info(srv, share["id"])["events"]
    assert len([e for e in events if e["action"] == "share.password" and e["outcome"] == "failure"]) == 5
    assert share_info(srv, share["id"])["opens"] == 0


def test_a_wrong_password_answers_the_form_again_with_its_message(gate):
    """200, not 401: from Orthanc 1.12.2 an error status's body goes as text/plain, which would take
    the form away from a patient who mistyped (docs/shares.md)."""
    srv = gate["srv"]
    share = create(srv, [PETER_MR_SMALL], password=PASSWORD, language="zu")
    for typed in ("not the password", "z" * 10_000):
        answer = Visitor(srv).open(share["token"], typed, lang="zu")
        assert "gate_share" not in answer.headers.get("Set-Cookie", "")
        assert 'name="password"' in answer.text and 'aria-invalid="true"' in answer.text
        assert answer.headers["Content-Type"].startswith("text/html")
        assert answer.status_code == 200, (len(typed), answer.status_code)


# -- 14. the patient sees who opened the images (POPIA s23) --------------------------------------------------------

def test_the_patients_page_lists_a_doctors_access_by_role_in_the_shares_language(gate):
    srv = gate["srv"]
    share = create(srv, [ARCHIBALD_CR], language="af")
    study_oid = share["studies"][0]["orthanc_id"]
    grant(srv, DOCTOR, "view_only", study_uid=ARCHIBALD_CR)
    looked = srv.doctor("GET", f"/studies/{study_oid}")
    assert looked.status_code == 200, looked.status_code
    visitor = Visitor(srv)
    visitor.opened(share["token"], lang="af")  # what the landing form posts (its hidden "lang")

    def log_section() -> str:
        page = visitor.get("/share/view")
        assert page.status_code == 200
        found = re.search(r'<section[^>]*aria-labelledby="log-title".*?</section>', page.text, re.S)
        return found.group(0) if found else ""

    def doctor_listed() -> str:
        section = log_section()
        return section if DOCTOR_ROLE["af"] in section else ""

    section = wait_until(doctor_listed, seconds=10)
    assert section and "Wie hierdie beelde oopgemaak het" in section, log_section()
    assert DOCTOR_ROLE["af"] in section and "Bekyk" in section
    assert DOCTOR not in section  # AccessLogNames is off: the role and practice, not the name


# -- 15. no token in any log ------------------------------------------------------------------------------------

def test_no_token_appears_in_the_orthanc_log_or_the_audit(gate):
    srv = gate["srv"]
    assert len(TOKENS) >= 10
    log = srv.proc.log_text()
    rows = audit_rows(srv)
    assert rows
    for token in TOKENS:
        assert token not in log
        for row in rows:
            for column in ("path", "detail", "reason"):
                assert token not in (row[column] or ""), (column, dict(row))


# -- 16. wrong links from one address are throttled (last: it blocks this address) -------------------------------

def test_wrong_links_answer_one_404_page_then_the_address_is_throttled_even_for_a_real_link(gate):
    srv = gate["srv"]
    real = create(srv, [PETER_MR_SMALL])
    malformed = requests.get(srv.url("/share/abc"), timeout=10)
    well_formed = requests.get(srv.url(f"/share/{random_token()}"), timeout=10)
    assert (malformed.status_code, well_formed.status_code) == (404, 404)
    assert malformed.content == well_formed.content and NOT_FOUND_TITLE in well_formed.text
    assert well_formed.headers["Referrer-Policy"] == "no-referrer"
    statuses = [well_formed.status_code]
    for _ in range(8):
        answer = requests.get(srv.url(f"/share/{random_token()}"), timeout=10)
        statuses.append(answer.status_code)
        if answer.status_code == 404:
            assert answer.content == malformed.content
    # "abc" and the first 7 random ones are the 8 counted; the 8th and 9th random ones are throttled.
    assert statuses == [404] * 7 + [403] * 2, statuses
    assert int(answer.headers["Retry-After"]) > 0 and "Too many attempts from your network" in answer.text
    refused = requests.get(srv.url(f"/share/{real['token']}"), timeout=10)
    assert refused.status_code == 403 and "Retry-After" in refused.headers
    opened = requests.post(srv.url(f"/share/{real['token']}"), data={"password": ""}, timeout=10,
                           allow_redirects=False)
    assert opened.status_code == 403 and "gate_share" not in opened.headers.get("Set-Cookie", "")

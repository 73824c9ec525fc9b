"""A referring doctor's morning, in Chromium on a phone-size screen: a modality pushes a study that
names them; they sign in, land on their dashboard, see it marked new (and yesterday's not), open it
in a viewer and download it as a ZIP. Screenshots in var/artifacts/referrals/."""

from __future__ import annotations

import io
import sqlite3
import time
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.conftest import Server, start_gate
from tests.harness import storescu
from tests.integration.grants_support import PASSWORD
from tests.referral_studies import Referral, write_study

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "artifacts" / "referrals"
PHONE = {"width": 360, "height": 740}
DOCTOR = {"hpcsa_number": "MP0400001", "title": "Dr", "first_name": "Naledi", "last_name": "Mokoena",
          "username": "drnaledi"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    server = start_gate(tmp_path_factory.mktemp("referral-browser"))
    try:
        server.proc.gatectl_many([(["create-user", "drnaledi", "--role", "referring_doctor", "--password-stdin"],
                                   PASSWORD + "\n")])
        assert server.admin("POST", "/gate/api/doctors", json=DOCTOR).status_code == 201
        yield server
    finally:
        server.proc.stop()


def push_linked(srv: Server, folder: Path, referral: Referral) -> str:
    """Push a study naming the doctor; its Orthanc id once arrival has linked it."""
    study_uid, files = write_study(folder, referral, instances=3)
    assert storescu(srv.proc.dicom_port, files).returncode == 0
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


def test_a_doctor_finds_a_new_referral_on_a_phone_opens_and_downloads_it(srv, browser, tmp_path):
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

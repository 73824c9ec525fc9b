"""Orthanc Explorer in a real browser (Debian's Chromium, driven by Playwright): a doctor who signs
in on the login form sees only the patients and studies granted to them."""

from __future__ import annotations

import pytest

from tests.conftest import DOCTOR, DOCTOR_PASSWORD, Server, start_gate, upload_dicomdir

GRANTED = "77654033"  # Doe^Archibald: two studies in pydicom's DICOMDIR set
OTHERS = ("98890234", "12345678")


@pytest.fixture(scope="module")
def explorer_server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_gate(tmp_path_factory.mktemp("explorer"))
    try:
        upload_dicomdir(srv)
        granted = srv.admin("POST", "/gate/api/grants", json={"user": DOCTOR, "patient_id": GRANTED,
                                                              "level": "view_only"})
        assert granted.status_code == 201, granted.text
        yield srv
    finally:
        srv.proc.stop()




def test_doctor_signs_in_and_explorer_lists_only_their_patient(explorer_server: Server, browser):
    page = browser.new_page()
    refused: list[tuple[int, str]] = []
    page.on("response", lambda r: refused.append((r.status, r.url)) if r.status >= 400 else None)
    page.on("dialog", lambda d: (refused.append((0, d.message)), d.dismiss()))
    page.goto(explorer_server.url("/"))
    page.fill('input[name="username"]', DOCTOR)
    page.fill('input[name="password"]', DOCTOR_PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url("**/gate/doctor")  # a doctor's home is their dashboard

    page.goto(explorer_server.url("/app/explorer.html#find-patients"))
    page.wait_for_selector("#all-patients li a")
    patients = page.inner_text("#all-patients")
    page.goto(explorer_server.url("/app/explorer.html#find-studies"))
    page.wait_for_selector("#all-studies li a")
    studies = page.inner_text("#all-studies")

    assert "Doe^Archibald" in patients and GRANTED in patients
    assert not any(other in patients for other in OTHERS)
    assert studies.count("Doe^Archibald") == 2, studies
    assert refused == [], "Explorer asked for something the doctor was refused"
    page.close()

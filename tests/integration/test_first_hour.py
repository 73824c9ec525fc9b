"""The first hour of a new practice's admin, in Chromium (headless Debian chromium, Playwright), on
a fresh server: sign in with the one-time password `gatectl ensure-admin` printed, choose a password
(a weak one refused with its reason), scan the QR code (decoded from a screenshot) and enrol, add a
doctor (a bad HPCSA number shown beside its field, then a good one), give the doctor a login,
grant three studies found by a search and revoke one, find the doctor's accesses in the audit and
export them as CSV, print a patient's access report, unlock a locked-out user, restart the server.
Screenshots are kept in var/artifacts/first-hour/."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

import pyotp
import pytest
import requests
import zxingcpp
from PIL import Image
from playwright.sync_api import Page, expect

from tests.conftest import SAMPLES, upload_dicomdir
from tests.harness import REPO, OrthancProcess, storescu

ARTIFACTS = REPO / "var" / "artifacts" / "first-hour"
PETER = "98890234"  # pydicom's DICOMDIR set: Doe^Peter has four studies
GOOD_PASSWORD = "kestrel-orbit-meadow-42"
DOCTOR_PASSWORD = "violet-harbour-lantern-7"


class _Uploader:
    """What upload_dicomdir needs of a Server: an admin's authenticated calls (an API key)."""

    def __init__(self, proc: OrthancProcess, key: str) -> None:
        self.proc, self.key = proc, key

    def admin(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.proc.url(path), headers={"Authorization": f"Bearer {self.key}"},
                                timeout=30, **kwargs)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory):
    """A server as a practice gets it: the shipped settings (admins must use one-time codes, the
    shipped lockout), the first admin made by `gatectl ensure-admin`, some studies."""
    proc = OrthancProcess(tmp_path_factory.mktemp("first-hour"), gate={"DatabaseTimeoutSeconds": 1})
    printed = proc.gatectl("ensure-admin").stdout
    username = re.search(r"username: (\S+)", printed).group(1)
    password = re.search(r"one-time password: (\S+)", printed).group(1)
    loader = proc.gatectl("create-user", "loader", "--role", "admin", "--password-stdin",
                          "--no-password-change", stdin="quarry-lantern-supply-12345\n")
    assert loader.returncode == 0
    key = proc.gatectl("create-api-key", "loader", "--user", "loader").stdout.strip().splitlines()[-1]
    proc.start()
    try:
        pushed = storescu(proc.dicom_port, sorted(SAMPLES.glob("*.dcm")))
        assert pushed.returncode == 0, pushed.stderr
        upload_dicomdir(_Uploader(proc, key))
        yield proc, username, password
    finally:
        proc.stop()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fresh_code(totp: pyotp.TOTP, used: set[str]) -> str:
    """A code not used yet (each is good once): wait for the next 30-second step if need be."""
    while (code := totp.now()) in used:
        time.sleep(1)
    used.add(code)
    return code


def test_the_first_hour(fresh, browser):
    proc, admin_name, one_time_password = fresh
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    used: set[str] = set()

    # Sign in with the one-time password: straight to choosing one's own, without the current one.
    page.goto(proc.url("/"))
    expect(page).to_have_url(re.compile(r"/gate/login"))
    page.fill("input[name=username]", admin_name)
    page.fill("input[name=password]", one_time_password)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/gate/password"))
    assert page.locator("input[name=current]").count() == 0
    expect(page.locator("#signed-in-as")).to_have_text(admin_name)
    page.fill("input[name=new]", "aaaaaaaaaaaa")
    page.fill("input[name=confirm]", "aaaaaaaaaaaa")
    page.click("button[type=submit]")
    error = page.locator(".error")
    expect(error).to_be_visible()
    assert re.search(r"repeat|same character", error.inner_text(), re.I), error.inner_text()
    shot(page, "01-weak-password-refused")
    page.fill("input[name=new]", GOOD_PASSWORD)
    page.fill("input[name=confirm]", GOOD_PASSWORD)
    page.click("button[type=submit]")

    # Enrol: the QR code as the browser draws it is what a phone scans.
    expect(page).to_have_url(re.compile(r"/gate/mfa"))
    qr = page.locator(".qr")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    qr.screenshot(path=str(ARTIFACTS / "02-qr.png"))
    decoded = zxingcpp.read_barcodes(Image.open(ARTIFACTS / "02-qr.png"))
    assert decoded, "the QR code on the page decodes"
    uri = decoded[0].text
    assert uri.startswith("otpauth://totp/")
    totp = pyotp.parse_uri(uri)
    assert totp.secret == page.locator(".secret").inner_text().replace(" ", "")
    page.fill("input[name=code]", fresh_code(totp, used))
    page.click("button[type=submit]")
    expect(page.locator(".codes li")).to_have_count(10)
    expect(page.locator("#signed-in-as")).to_have_text(admin_name)
    shot(page, "03-recovery-codes")
    codes = [c.strip() for c in page.locator(".codes code").all_inner_texts()]
    sent: list[str] = []  # the codes stay in the browser: copying, downloading and printing ask nothing
    page.on("request", lambda asked: sent.append(asked.url))
    # ... can be downloaded (made in the browser, from the page): a title naming the account, then
    # exactly the codes on the page, one a line,
    with page.expect_download() as download:
        page.click("#download-codes")
    assert download.value.suggested_filename.startswith("orthanc-gate-recovery-codes")
    title, listed = Path(download.value.path()).read_text().split("\n\n", 1)
    assert admin_name in title and listed.split() == codes
    # ... copied, with the Clipboard API,
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=proc.url("/").rstrip("/"))
    page.click("#copy-codes")
    expect(page.locator("#copied")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()").split("\n\n", 1)[1].split() == codes
    # ... or without it (an older browser): the page's fallback, execCommand("copy").
    page.evaluate("""() => { window.kept = navigator.clipboard; document.getElementById("copied").textContent = "";
        Object.defineProperty(navigator, "clipboard", {value: undefined, configurable: true});
        return window.kept.writeText(""); }""")
    page.click("#copy-codes")
    expect(page.locator("#copied")).to_have_text("Copied.")
    assert page.evaluate("window.kept.readText()").split("\n\n", 1)[1].split() == codes
    assert [url for url in sent if not url.startswith("blob:")] == []
    # ... and printed: the print stylesheet keeps the codes and names the account, without the buttons.
    page.emulate_media(media="print")
    expect(page.locator(".print-only")).to_be_visible()
    expect(page.locator("#copy-codes")).to_be_hidden()
    page.pdf(path=str(ARTIFACTS / "03-recovery-codes.pdf"))
    page.emulate_media(media="screen")
    expect(page.locator("#print-codes")).to_be_visible()

    # A doctor: a bad HPCSA number is shown beside its field, what was typed stays; then a good one.
    page.goto(proc.url("/gate/admin/doctors"))
    expect(page.locator("header.top")).to_contain_text(f"Signed in as {admin_name}")
    form = page.locator("#new-doctor")
    form.locator("input[name=hpcsa_number]").fill("MP12")
    form.locator("input[name=first_name]").fill("Lerato")
    form.locator("input[name=last_name]").fill("Mokoena")
    form.locator("input[name=email]").fill("lerato@example.org")
    form.locator("input[name=mobile]").fill("082 555 1234")
    form.locator("button[type=submit]").click()
    inline = page.locator("#hpcsa_number-error")
    expect(inline).to_contain_text("not an HPCSA registration number")
    expect(page.locator("#new-doctor input[name=last_name]")).to_have_value("Mokoena")
    shot(page, "04-bad-hpcsa-number")
    page.locator("#new-doctor input[name=hpcsa_number]").fill("MP0654321")
    page.locator("#new-doctor button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("The doctor is registered")
    page.locator("#login input[name=username]").fill("drmokoena")
    page.locator("#login button[type=submit]").click()
    expect(page.locator("#login")).to_contain_text("Signs in as drmokoena")
    shot(page, "05-doctor-with-login")

    # The doctor's first password, set by the admin (they change it at their first sign-in).
    page.goto(proc.url("/gate/admin/users/drmokoena"))
    page.fill("#reset-password input[name=password]", DOCTOR_PASSWORD)
    page.fill("#reset-password input[name=confirm]", DOCTOR_PASSWORD)
    page.click("#reset-password button[type=submit]")
    expect(page.locator(".notice")).to_contain_text("must be changed at the next sign-in")

    # Grants: find Doe^Peter's studies, tick three, grant them to the doctor; revoke one.
    page.goto(proc.url("/gate/admin/grants"))
    page.fill("#find-studies input[name=patient_id]", PETER)
    page.click("#find-studies button[type=submit]")
    boxes = page.locator("#found-studies tbody input[type=checkbox]")
    expect(boxes).to_have_count(4)
    for i in range(3):
        boxes.nth(i).check()
    page.select_option("#grant-studies select[name=subject]", "user:drmokoena")
    page.click("#grant-studies button[type=submit]")
    expect(page.locator(".notice")).to_contain_text("Grants written: 3")
    rows = page.locator("#grants tbody tr", has_text="drmokoena")
    expect(rows).to_have_count(3)
    shot(page, "06-three-grants")
    rows.first.locator("button", has_text="Revoke").click()
    expect(page.locator(".notice")).to_contain_text("The grant is revoked")
    expect(page.locator("#grants tbody tr", has_text="drmokoena")).to_have_count(2)

    # The doctor signs in, chooses a password and opens their studies: accesses for the audit.
    doctor = browser.new_context().new_page()
    doctor.goto(proc.url("/gate/login"))
    doctor.fill("input[name=username]", "drmokoena")
    doctor.fill("input[name=password]", DOCTOR_PASSWORD)
    doctor.click("button[type=submit]")
    expect(doctor).to_have_url(re.compile(r"/gate/password"))
    doctor.fill("input[name=new]", DOCTOR_PASSWORD + "-mine")
    doctor.fill("input[name=confirm]", DOCTOR_PASSWORD + "-mine")
    doctor.click("button[type=submit]")
    doctor.goto(proc.url("/gate/doctor"))
    expect(doctor.locator(".study")).to_have_count(2)
    doctor.context.close()

    # The audit: the doctor's accesses, exported as CSV.
    page.goto(proc.url("/gate/admin/audit"))
    page.fill("#audit-search input[name=user]", "drmokoena")
    page.click("#audit-search button[type=submit]")
    expect(page.locator("#events tbody tr").first).to_contain_text("drmokoena")
    shot(page, "07-audit-of-the-doctor")
    with page.expect_download() as download:
        page.click("#export")
    exported = Path(download.value.path()).read_text()
    lines = list(csv.DictReader(io.StringIO(exported)))
    assert lines and {line["actor"] for line in lines} == {"drmokoena"}
    assert any(line["action"] == "list" and PETER in line["patient_id"] for line in lines)

    # Doe^Peter's access report: the doctor is in it; printed to PDF as the print button would.
    page.goto(proc.url(f"/gate/admin/audit/patient?patient_id={PETER}"))
    expect(page.locator("#accesses")).to_contain_text("drmokoena")
    # Its Print button calls window.print(); headless Chromium cannot show a print dialog, so the
    # page is printed to PDF as that dialog would, with the print stylesheet (only the report).
    expect(page.locator("button[data-print]")).to_be_visible()
    page.emulate_media(media="print")
    page.pdf(path=str(ARTIFACTS / "08-access-report.pdf"))
    assert not page.locator("header.top").is_visible()
    page.emulate_media(media="screen")
    shot(page, "08-access-report")

    # A user locked out by wrong passwords, unlocked by the admin.
    for _ in range(5):
        requests.post(proc.url("/gate/login"), json={"username": "drmokoena", "password": "not it at all"},
                      timeout=10)
    page.goto(proc.url("/gate/admin/users/drmokoena"))
    expect(page.locator("#state")).to_contain_text("locked out")
    page.click("button:has-text('Lift the lockout')")
    expect(page.locator(".notice")).to_contain_text("The sign-in lockout is lifted")
    shot(page, "09-unlocked")
    assert requests.post(proc.url("/gate/login"), timeout=10, json={
        "username": "drmokoena", "password": DOCTOR_PASSWORD + "-mine"}).status_code == 200

    # Restart: the configuration checks clean, a fresh code, and the server comes back.
    page.goto(proc.url("/gate/admin/server"))
    expect(page.locator("#check")).to_contain_text("checks clean")
    pid, starts = proc.pid, proc.log_text().count("Gate: started;")
    page.fill("#restart input[name=otp]", fresh_code(totp, used))
    page.click("#restart button[type=submit]")
    expect(page.locator("#restarting")).to_contain_text("Orthanc is restarting")
    shot(page, "10-restarting")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.log_text().count("Gate: started;") == starts:
        time.sleep(0.3)  # until the new Orthanc has loaded the Gate again
    while time.monotonic() < deadline:
        try:
            if requests.get(proc.url("/gate/health"), timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.3)
    assert proc.log_text().count("Gate: started;") == starts + 1, proc.log_tail()
    page.goto(proc.url("/gate/admin/server"))
    expect(page.locator("#check")).to_contain_text("checks clean")
    assert proc.pid == pid and proc.returncode is None
    shot(page, "11-back-after-restart")

    # The console on a tablet: every page fits the width (tables scroll inside their own box).
    page.set_viewport_size({"width": 768, "height": 1024})
    for path in ("/gate/admin/", "/gate/admin/users", "/gate/admin/doctors", "/gate/admin/grants",
                 "/gate/admin/audit", "/gate/admin/server"):
        page.goto(proc.url(path))
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    page.goto(proc.url("/gate/admin/"))
    expect(page.locator(".plot svg")).to_have_count(4)
    shot(page, "12-dashboard-on-a-tablet")
    context.close()

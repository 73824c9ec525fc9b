"""The pages around signing in and out, in Chromium: every page of a signed-in browser says who is
signed in and has a sign-out; GET /gate/logout is a page (a button when signed in, "you are signed
out" when not); after signing out, the sign-in page says so; signed-out pages get an icon, not 403."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import ADMIN_PASSWORD, DOCTOR, DOCTOR_PASSWORD, Server, start_gate


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_gate(tmp_path_factory.mktemp("gate-sign-out"))
    try:
        yield srv
    finally:
        srv.proc.stop()


def test_signing_out_from_any_page_and_being_told(server: Server, browser):
    page = browser.new_context().new_page()
    page.goto(server.url("/gate/login"))
    page.fill("input[name=username]", DOCTOR)
    page.fill("input[name=password]", DOCTOR_PASSWORD)
    page.click("button[type=submit]")
    for path in ("/gate/doctor", "/gate/password", "/gate/logout"):
        page.goto(server.url(path))
        expect(page.locator("#signed-in-as")).to_have_text(DOCTOR)
        expect(page.locator("#sign-out")).to_be_visible()
    # GET /gate/logout asks; it does not sign out by itself (a link on another site must not).
    expect(page.locator("#logout")).to_contain_text("Sign out?")
    page.goto(server.url("/gate/doctor"))
    expect(page.locator("#signed-in-as")).to_have_text(DOCTOR)
    page.goto(server.url("/gate/logout"))
    page.click("#logout button[type=submit]")
    expect(page).to_have_url(re.compile(r"/gate/login\?signed_out=1$"))
    expect(page.locator("#signed-out")).to_have_text("You have signed out.")
    page.goto(server.url("/gate/logout"))
    expect(page.locator("#logout")).to_contain_text("You are signed out")
    expect(page.locator("#signed-in-as")).to_have_count(0)
    page.goto(server.url("/gate/doctor"))
    expect(page).to_have_url(re.compile(r"/gate/login"))


def test_nobody_signed_in_gets_the_icon_not_a_refusal(server: Server):
    for path in ("/favicon.ico", "/app/images/favicon.ico"):
        answer = requests.get(server.url(path), timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("image/"), path
    assert requests.post(server.url("/favicon.ico"), timeout=10).status_code == 403  # only the picture


def test_a_basic_caller_gets_no_sign_out_button(server: Server):
    page = requests.get(server.url("/gate/logout"), auth=(DOCTOR, DOCTOR_PASSWORD), timeout=10)
    assert page.status_code == 200 and "You are signed out" in page.text and ADMIN_PASSWORD not in page.text

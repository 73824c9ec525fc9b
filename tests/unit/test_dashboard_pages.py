"""The pages around the doctor dashboard: where a signed-in browser lands (handlers/pages.py's one
`destination`), /gate/doctor and its report for browsers and for API callers (handlers/dashboard.py),
and the set-password link's pages (headers, same-site posts, the same answer for every dead link)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from plugin.errors import BadRequest, Forbidden, Unauthenticated
from plugin.handlers import dashboard, pages
from plugin.handlers.http import Request
from plugin.identity.authenticate import Identification
from plugin.policies.types import ANONYMOUS, Principal
from plugin.services.access import AccessService, ResourceLocator
from plugin.services.password_links import EXPIRED_MESSAGE
from plugin.services.password_links import issue as issue_link
from plugin.services.search import SearchService
from plugin.services.ui_pages import UiPages
from plugin.store import accounts
from plugin.store.doctors import add_doctor
from plugin.store.models import Doctor, User
from tests.unit.conftest import T0
from tests.unit.test_dashboard_service import DashboardCore, grant

HOME = "/app/explorer.html"
DOCTOR = Principal("drnkosi", frozenset({"referring_doctor"}), "session")
ADMIN = Principal("root1", frozenset({"admin"}), "session")
BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8", "host": "pacs.example:8042"}


@pytest.fixture
def core() -> DashboardCore:
    return DashboardCore()


def runtime_for(store, core, principal: Principal, clock=lambda: T0) -> SimpleNamespace:  # noqa: ANN001
    access = AccessService(store, ResourceLocator(core), clock=clock)
    csrf = "csrf-123" if principal.via == "session" else None
    identify = lambda headers, ip: Identification(principal, csrf_token=csrf)  # noqa: E731
    return SimpleNamespace(
        store=store, core=core, access=access, search=SearchService(core, access), clock=clock,
        config=SimpleNamespace(home_page=HOME),
        authenticator=SimpleNamespace(identify=identify, invalidate=lambda *key: None),
        audit_now=lambda record: True, audit_refusal=lambda record: True,
        ui_pages=UiPages({"/app/explorer.html": b"", "/web-viewer/app/viewer.html": b""}))


def add_user(store, username: str, roles: str = "referring_doctor") -> None:  # noqa: ANN001
    with store.transaction() as db:
        accounts.add_user(db, User(username=username, roles=roles, created_at=T0, updated_at=T0,
                                   must_change_password=True))


# -- where a signed-in browser lands ------------------------------------------------------------------


@pytest.mark.parametrize(("principal", "tied", "location"), [
    (DOCTOR, False, "/gate/doctor"),
    (Principal("rad", frozenset({"radiologist"}), "session"), False, "/gate/doctor"),
    (Principal("clerk", frozenset({"billing"}), "session"), True, "/gate/doctor"),
    (Principal("clerk", frozenset({"billing"}), "session"), False, HOME),
    (ADMIN, False, HOME),
    (Principal("drnkosi", frozenset({"referring_doctor"}), "session", must_change_password=True), False,
     "/gate/password"),
    (Principal("drnkosi", frozenset({"radiologist"}), "session", mfa_pending=True), False, "/gate/mfa"),
])
def test_root_sends_each_signed_in_browser_to_its_home(store, core, principal, tied, location):
    if tied:
        with store.transaction() as db:
            add_doctor(db, Doctor(hpcsa_number="MP0123456", last_name="X", username=principal.username,
                                  created_at=T0, updated_at=T0))
    answer = pages.root(runtime_for(store, core, principal), Request("GET", "/"))
    assert (answer.status, answer.headers["Location"]) == (303, location)


def test_root_without_a_session_signs_in_towards_whichever_home_is_theirs(store, core):
    answer = pages.root(runtime_for(store, core, ANONYMOUS), Request("GET", "/"))
    assert answer.headers["Location"] == "/gate/login?next=/"


@pytest.mark.parametrize(("asked", "lands"), [("", "/gate/doctor"), ("/", "/gate/doctor"),
                                              ("/app/explorer.html", "/app/explorer.html")])
def test_a_page_asked_for_wins_over_the_home(store, core, asked, lands):
    assert pages.destination(runtime_for(store, core, DOCTOR), DOCTOR, asked) == lands


def test_the_sign_in_form_says_when_no_page_was_asked_for(store, core):
    runtime = runtime_for(store, core, ANONYMOUS)
    plain = pages.login_page(runtime, Request("GET", "/gate/login")).body.decode()
    assert f'name="next" value="{HOME}"' in plain and 'name="home" value="1"' in plain
    asked = pages.login_page(runtime, Request("GET", "/gate/login", query={"next": "/app/explorer.html"}))
    assert 'name="home"' not in asked.body.decode()


def test_a_signed_in_browser_opening_the_sign_in_page_goes_home(store, core):
    answer = pages.login_page(runtime_for(store, core, DOCTOR), Request("GET", "/gate/login"))
    assert answer.headers["Location"] == "/gate/doctor"


# -- /gate/doctor ----------------------------------------------------------------------------------------


def test_a_browser_without_a_session_is_sent_to_sign_in_and_back(store, core):
    answer = dashboard.doctor_page(runtime_for(store, core, ANONYMOUS),
                                   Request("GET", "/gate/doctor", BROWSER, {"q": "nkosi+th"}))
    assert (answer.status, answer.headers["Location"]) == (303, "/gate/login?next=/gate/doctor%3Fq%3Dnkosi%2Bth")


def test_an_api_caller_without_credentials_gets_the_usual_refusal(store, core):
    with pytest.raises(Unauthenticated):
        dashboard.doctor_page(runtime_for(store, core, ANONYMOUS), Request("GET", "/gate/doctor"))
    with pytest.raises(Unauthenticated):
        dashboard.report(runtime_for(store, core, ANONYMOUS), Request("GET", "/gate/doctor/studies/x/report"), "x")


def test_an_api_caller_owing_a_new_password_is_refused(store, core):
    owing = Principal("drnkosi", frozenset({"referring_doctor"}), "basic", must_change_password=True)
    with pytest.raises(Forbidden):
        dashboard.doctor_page(runtime_for(store, core, owing), Request("GET", "/gate/doctor"))


def test_the_dashboard_page(store, core):
    add_user(store, "drnkosi")
    ids = core.add("PAT-1", "1.1", name="NKOSI^THANDI", description="CT CHEST", accession="ACC-1")
    core.add_report(ids)
    core.add("PAT-2", "2.1", name="OTHER^PATIENT")
    grant(store, "download", patient_id="PAT-1")
    answer = dashboard.doctor_page(runtime_for(store, core, DOCTOR), Request("GET", "/gate/doctor", BROWSER))
    page = answer.body.decode()
    assert answer.status == 200 and answer.content_type.startswith("text/html")
    assert "NKOSI, THANDI" in page and "OTHER" not in page and "PAT-2" not in page
    assert 'class="badge">New<' in page
    assert f'href="/app/explorer.html#study?uuid={ids.study}"' in page
    assert f'href="/web-viewer/app/viewer.html?series={ids.series}"' in page
    assert f'href="/studies/{ids.study}/archive"' in page
    assert f'href="/gate/doctor/studies/{ids.study}/report"' in page
    assert f'<img loading="lazy" src="/instances/{ids.instance}/preview"' in page
    assert 'name="csrf_token" value="csrf-123"' in page and "Signed in as" in page


def test_a_bad_search_is_a_clear_message(store, core):
    add_user(store, "drnkosi")
    answer = dashboard.doctor_page(runtime_for(store, core, DOCTOR),
                                   Request("GET", "/gate/doctor", BROWSER, {"from": "2024-02-30"}))
    assert answer.status == 400 and "real date written YYYY-MM-DD" in answer.body.decode()


def test_the_report_is_an_inline_pdf(store, core):
    ids = core.add("PAT-1", "1.1")
    core.add_report(ids)
    grant(store, patient_id="PAT-1")
    answer = dashboard.report(runtime_for(store, core, DOCTOR),
                              Request("GET", f"/gate/doctor/studies/{ids.study}/report", BROWSER), ids.study)
    assert (answer.status, answer.content_type) == (200, "application/pdf")
    assert answer.headers["Content-Disposition"].startswith("inline")
    assert answer.body.startswith(b"%PDF")


# -- the set-password link ----------------------------------------------------------------------------------


@pytest.fixture
def link(store, cheap_argon2) -> str:
    add_user(store, "newdoc")
    with store.transaction() as db:
        return issue_link(db, "newdoc", T0, 72)


def post(runtime, token: str, new: str, confirm: str, headers: dict[str, str] | None = None):  # noqa: ANN001, ANN201
    body = f"new={new}&confirm={confirm}".replace(" ", "+").encode()
    request = Request("POST", f"/gate/set-password/{token}", {"content-type": "application/x-www-form-urlencoded",
                                                               "host": "pacs.example:8042", **(headers or {})},
                      body=body)
    return pages.set_password(runtime, request, token)


def test_the_link_opens_a_form_that_leaks_nothing_onwards(store, core, link):
    answer = pages.set_password_page(runtime_for(store, core, ANONYMOUS), Request("GET", "/x"), link)
    page = answer.body.decode()
    assert answer.status == 200 and "newdoc" in page and f'action="/gate/set-password/{link}"' in page
    assert answer.headers["Referrer-Policy"] == "no-referrer" and answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("origin", [{}, {"origin": "null"}, {"origin": "http://pacs.example:8042"},
                                    {"referer": "http://pacs.example:8042/gate/set-password/x"}])
def test_the_form_sets_the_password_once(store, core, link, origin):
    runtime = runtime_for(store, core, ANONYMOUS)
    done = post(runtime, link, "a long new password", "a long new password", origin)
    assert done.status == 200 and "/gate/login" in done.body.decode()
    assert done.headers["Referrer-Policy"] == "no-referrer"
    again = post(runtime, link, "a long new password", "a long new password", origin)
    assert again.status == 410 and EXPIRED_MESSAGE in again.body.decode()


@pytest.mark.parametrize("origin", [{"origin": "http://evil.example"}, {"referer": "http://evil.example/x"},
                                    {"origin": "null", "referer": "http://evil.example/x"}])
def test_a_post_from_another_site_is_refused(store, core, link, origin):
    with pytest.raises(BadRequest):
        post(runtime_for(store, core, ANONYMOUS), link, "a long new password", "a long new password", origin)


@pytest.mark.parametrize(("new", "confirm", "message"), [
    ("a long new password", "a long new passwore", "The two passwords differ"),
    ("short", "short", "at least 12 characters"),
])
def test_a_refused_password_shows_the_form_again(store, core, link, new, confirm, message):
    runtime = runtime_for(store, core, ANONYMOUS)
    answer = post(runtime, link, new, confirm)
    # 200: the form again with its message (Orthanc 1.12.2+ would send a 400's page as plain text).
    assert answer.status == 200 and message in answer.body.decode() and 'name="new"' in answer.body.decode()
    assert pages.set_password_page(runtime, Request("GET", "/x"), link).status == 200  # still usable


def test_an_unknown_link_is_404_with_the_same_page(store, core, link):
    runtime = runtime_for(store, core, ANONYMOUS)
    answer = pages.set_password_page(runtime, Request("GET", "/x"), "A" * 43)
    assert answer.status == 404 and EXPIRED_MESSAGE in answer.body.decode()
    assert post(runtime, "A" * 43, "a long new password", "a long new password").status == 404

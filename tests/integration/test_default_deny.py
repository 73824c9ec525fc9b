"""Default deny over every way Orthanc hands out data, against a real Orthanc with the Gate."""

from __future__ import annotations

import subprocess

import pytest
import requests

from tests.conftest import DOCTOR, DOCTOR_PASSWORD, Server

# (method, path template, body) for every route family a browser, viewer or script would use to
# read patient data; {instance}, {study}, ... are filled from the `sample` fixture.
DATA_ROUTES = [
    ("GET", "/patients", None),
    ("GET", "/studies?expand", None),
    ("GET", "/series", None),
    ("GET", "/instances", None),
    ("GET", "/patients/{patient}", None),
    ("GET", "/studies/{study}", None),
    ("GET", "/instances/{instance}/file", None),
    ("GET", "/instances/{instance}/simplified-tags", None),
    ("GET", "/instances/{instance}/preview", None),
    ("GET", "/studies/{study}/archive", None),
    ("POST", "/tools/find", '{{"Level": "Study", "Query": {{}}}}'),
    ("POST", "/tools/lookup", "{study_uid}"),
    ("GET", "/wado?requestType=WADO&studyUID={study_uid}&seriesUID={series_uid}&objectUID={sop_uid}"
            "&contentType=application/dicom", None),
    ("GET", "/dicom-web/studies", None),
    ("GET", "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}", None),
    ("GET", "/dicom-web/studies/{study_uid}/metadata", None),
    ("GET", "/webdav/", None),
    ("GET", "/statistics", None),
    ("GET", "/changes", None),
    ("GET", "/system", None),
]
IDS = [f"{m} {p.split('?')[0]}" for m, p, _ in DATA_ROUTES]


def _fill(template: str | None, sample: dict[str, str]) -> str | None:
    return template.format(**sample) if template is not None else None


@pytest.mark.parametrize(("method", "path", "body"), DATA_ROUTES, ids=IDS)
def test_anonymous_is_refused_on_orthanc_routes(server: Server, sample, method, path, body):
    answer = server.anonymous(method, _fill(path, sample), data=_fill(body, sample))
    assert answer.status_code == 403
    assert sample["study_uid"] not in answer.text and "Dlamini" not in answer.text


# Lists and searches the plugin answers itself (or the DICOMweb plugin through the plugin's
# /tools/find), trimmed: a user without grants gets an empty answer.
# (GET /instances is not among them: the core keeps that route, and its flat list is for admins.)
TRIMMED = {"GET /patients": [], "GET /studies": [], "GET /series": [],
           "POST /tools/find": [], "POST /tools/lookup": [], "GET /dicom-web/studies": [],
           "GET /statistics": {"CountPatients": 0, "CountStudies": 0, "CountSeries": 0, "CountInstances": 0}}


@pytest.mark.parametrize(("method", "path", "body"), DATA_ROUTES, ids=IDS)
def test_non_admin_without_grants_gets_no_patient_data(server: Server, sample, method, path, body):
    """drnkosi holds no grant on the shared server: refused, or an empty trimmed answer."""
    answer = server.doctor(method, _fill(path, sample), data=_fill(body, sample))
    route = f"{method} {path.split('?')[0]}"
    if route in TRIMMED:
        assert answer.status_code == 200 and answer.json() == TRIMMED[route]
    elif route == "GET /system":
        assert answer.status_code == 200 and set(answer.json()) >= {"Name", "Version"}  # Explorer asks first
    else:
        assert answer.status_code == 403
    assert sample["study_uid"] not in answer.text and "Dlamini" not in answer.text


@pytest.mark.parametrize(("method", "path", "body"), [r for r in DATA_ROUTES if "webdav" not in r[1]],
                         ids=[i for i in IDS if "webdav" not in i])
def test_admin_is_served(server: Server, sample, method, path, body):
    answer = server.admin(method, _fill(path, sample), data=_fill(body, sample))
    assert answer.status_code == 200, answer.text[:200]


def test_admin_reaches_webdav_when_an_admin_enabled_it(server: Server):
    answer = server.admin("PROPFIND", "/webdav/", headers={"Depth": "1"})
    assert answer.status_code in (200, 207)


def test_explorer_data_calls_are_refused_without_a_session(server: Server):
    # Orthanc Explorer's page loads these; without credentials each is refused.
    for path in ("/system", "/patients?expand", "/statistics", "/plugins", "/tools/now"):
        assert server.anonymous("GET", path).status_code == 403, path


def test_our_own_routes_challenge_anonymous_callers(server: Server):
    answer = server.anonymous("GET", "/gate/api/me")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert server.anonymous("GET", "/gate/api/no-such-thing").status_code == 401


def test_anonymous_gets_health_login_and_static_assets_only(server: Server):
    assert server.anonymous("GET", "/gate/health").json() == {"status": "ok", "store": "ok"}
    login = server.anonymous("GET", "/gate/login")
    assert login.status_code == 200 and 'name="password"' in login.text
    assert login.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in login.headers[
        "Content-Security-Policy"]
    assert server.anonymous("GET", "/gate/static/gate.css").status_code == 200
    assert server.anonymous("GET", "/app/explorer.js").status_code == 403
    # A UI's page is sent to sign in instead (test_explorer_ui.py).
    assert server.anonymous("GET", "/app/explorer.html").status_code == 303


def test_root_without_a_session_redirects_to_the_login_page(server: Server):
    answer = server.anonymous("GET", "/")
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("/gate/login?next=")
    assert answer.headers["Cache-Control"] == "no-store"


def test_a_browser_opening_the_server_lands_on_the_login_form(server: Server, tmp_path):
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path}", "--dump-dom", server.url("/")],
        capture_output=True, text=True, timeout=60)
    assert '<form method="post" action="/gate/login"' in dom.stdout, dom.stderr[-500:]


def test_non_admin_user_sees_their_own_identity(server: Server):
    me = server.doctor("GET", "/gate/api/me").json()
    assert me == {"username": DOCTOR, "roles": ["referring_doctor"], "via": "basic",
                  "must_change_password": False, "home": "/gate/doctor", "csrf_token": None}  # a doctor's home
    # ...and the static UI files, which carry no patient data.
    assert server.doctor("GET", "/app/explorer.html").status_code == 200


# -- Each way of disguising a request is tried by a non-admin and refused -----------------------

@pytest.mark.parametrize("path", [
    "/%70atients",                    # percent-encoded letter
    "/patients/",                     # trailing slash
    "//patients",                     # double slash
    "/PATIENTS",                      # case
    "/app/../patients",               # dot segments through an allowed prefix
    "/app/%2e%2e/patients",           # encoded dot segments
    "/app/..%2fpatients",             # encoded slash after dots
    "/gate/health/../../patients",    # dot segments through a public route
    "/gate/static/..%2f..%2fpatients",
])
def test_path_tricks_are_refused(server: Server, sample, path):
    # /patients itself is answered, trimmed (empty for this user): the tricks are aimed at a
    # patient's own route, which this user holds no grant on.
    tricked = path.replace("atients", f"atients/{sample['patient']}")
    answer = requests.get(server.url(tricked), auth=(DOCTOR, DOCTOR_PASSWORD), timeout=10)
    assert answer.status_code in (403, 404)
    assert "GATE-P001" not in answer.text and sample["patient"] not in answer.text
    listed = requests.get(server.url(path), auth=(DOCTOR, DOCTOR_PASSWORD), timeout=10)
    assert listed.status_code in (200, 403, 404) and "GATE-P001" not in listed.text
    if listed.status_code == 200:
        assert listed.json() == []


def test_method_override_in_query_is_refused(server: Server, sample):
    answer = server.doctor("GET", f"/studies/{sample['study']}?_method=DELETE")
    assert answer.status_code == 403
    assert server.admin("GET", f"/studies/{sample['study']}").status_code == 200


def test_method_override_header_is_refused(server: Server, sample):
    answer = server.doctor("POST", f"/studies/{sample['study']}", headers={"X-HTTP-Method-Override": "DELETE"})
    assert answer.status_code == 403
    assert server.admin("GET", f"/studies/{sample['study']}").status_code == 200


def test_head_is_refused(server: Server, sample):
    assert server.doctor("HEAD", f"/instances/{sample['instance']}/file").status_code in (403, 404)
    assert server.doctor("HEAD", "/patients").status_code in (403, 404)


def test_session_cookie_state_change_needs_csrf_proof(server: Server):
    session = requests.Session()
    login = session.post(server.url("/gate/login"), json={"username": "root1", "password": "admin password 123"},
                         timeout=10)
    csrf = login.json()["csrf_token"]
    body = '{"Level": "Study", "Query": {}}'
    assert session.post(server.url("/tools/find"), data=body, timeout=10).status_code == 403
    assert session.post(server.url("/tools/find"), data=body, timeout=10,
                        headers={"Origin": "http://evil.example"}).status_code == 403
    assert session.post(server.url("/tools/find"), data=body, timeout=10,
                        headers={"X-CSRF-Token": csrf}).status_code == 200
    assert session.post(server.url("/tools/find"), data=body, timeout=10,
                        headers={"Origin": server.proc.base}).status_code == 200


# Everything the plugin answers itself may name patients (trimmed lists and searches) or accounts
# (the API): no browser or shared cache keeps it, and no browser second-guesses its type.
PLUGIN_ANSWERS = [
    ("doctor", "GET", "/patients?expand", None),
    ("doctor", "GET", "/studies", None),
    ("doctor", "POST", "/tools/find", '{"Level": "Study", "Query": {}, "Expand": true}'),
    ("doctor", "POST", "/tools/lookup", "1.2.3"),
    ("doctor", "GET", "/statistics", None),
    ("doctor", "GET", "/gate/api/me", None),
    ("doctor", "GET", "/gate/api/nothing-here", None),
    ("admin", "GET", "/patients?expand", None),
    ("admin", "GET", "/gate/api/users", None),
    ("anonymous", "GET", "/gate/api/me", None),
    ("anonymous", "GET", "/gate/login", None),
    ("anonymous", "GET", "/gate/health", None),
    ("anonymous", "GET", "/", None),
]


@pytest.mark.parametrize(("who", "method", "path", "body"), PLUGIN_ANSWERS,
                         ids=[f"{w} {m} {p}" for w, m, p, _ in PLUGIN_ANSWERS])
def test_the_plugins_answers_are_never_stored_nor_sniffed(server: Server, who, method, path, body):
    answer = getattr(server, who)(method, path, data=body)
    assert answer.headers.get("Cache-Control") == "no-store", (answer.status_code, answer.headers)
    assert answer.headers.get("X-Content-Type-Options") == "nosniff"


def test_static_assets_may_be_cached_but_not_sniffed(server: Server):
    answer = server.anonymous("GET", "/gate/static/gate.css")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "max-age=3600"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"

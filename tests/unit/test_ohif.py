"""handlers/ohif.py: the viewer's pages go to signed-in users only (others are sent to sign in and
back), its files come from the prepared build and nowhere else, and its configuration is ours."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import unquote

import pytest

from plugin.handlers import ohif
from plugin.handlers.http import Request
from plugin.identity.authenticate import Identification
from plugin.policies.types import ANONYMOUS, Principal

DOCTOR = Principal("drnkosi", frozenset({"referring_doctor"}), "session")


def runtime_for(principal: Principal) -> SimpleNamespace:
    authenticator = SimpleNamespace(identify=lambda headers, ip: Identification(principal))
    return SimpleNamespace(authenticator=authenticator)


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    (tmp_path / "index.html").write_text("<!doctype html><title>OHIF</title>")
    (tmp_path / "app.bundle.abc.js").write_text("console.log(1)")
    (tmp_path / "codec.wasm").write_bytes(b"\0asm")
    (tmp_path.parent / "secret.txt").write_text("not part of the viewer")
    monkeypatch.setattr(ohif, "APP_DIR", tmp_path)
    return tmp_path


def get(principal: Principal, path: str, query: dict[str, str] | None = None):
    rest = path.removeprefix("/ohif").lstrip("/")
    return ohif.viewer(runtime_for(principal), Request("GET", path, query=query or {}), rest)


@pytest.mark.parametrize("path", ["/ohif", "/ohif/", "/ohif/viewer", "/ohif/index.html"])
def test_a_signed_in_user_gets_the_viewer_page(app_dir, path):
    answer = get(DOCTOR, path)
    assert answer.status == 200 and b"<title>OHIF</title>" in answer.body
    assert answer.content_type.startswith("text/html")
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


def test_a_browser_without_a_session_is_sent_to_sign_in_and_back(app_dir):
    answer = get(ANONYMOUS, "/ohif/viewer", {"StudyInstanceUIDs": "1.2.3"})
    assert answer.status == 303
    location = answer.headers["Location"]
    assert location.startswith("/gate/login?next=")
    assert unquote(location.split("next=", 1)[1]) == "/ohif/viewer?StudyInstanceUIDs=1.2.3"


@pytest.mark.parametrize(("principal", "owed"), [
    (Principal("drnkosi", frozenset({"referring_doctor"}), "session", must_change_password=True), "/gate/password"),
    (Principal("drnkosi", frozenset({"radiologist"}), "session", mfa_pending=True), "/gate/mfa"),
])
def test_a_user_who_still_owes_a_step_is_sent_to_it(app_dir, principal, owed):
    answer = get(principal, "/ohif/")
    assert (answer.status, answer.headers["Location"]) == (303, owed)


def test_files_come_from_the_build_with_their_type(app_dir):
    script = get(DOCTOR, "/ohif/app.bundle.abc.js")
    assert (script.status, script.content_type, script.body) == (200, "text/javascript", b"console.log(1)")
    assert get(DOCTOR, "/ohif/codec.wasm").content_type == "application/wasm"


def test_the_configuration_is_ours_pointing_at_this_servers_dicomweb(app_dir):
    answer = get(DOCTOR, "/ohif/app-config.js")
    assert answer.status == 200 and "Cache-Control" not in answer.headers
    assert b"window.location.origin + '/dicom-web'" in answer.body
    assert b"https://" not in answer.body  # no other server, no CDN


@pytest.mark.parametrize("path", ["/ohif/missing.js", "/ohif/../secret.txt", "/ohif/assets/../../secret.txt"])
def test_nothing_outside_the_build_is_served(app_dir, path):
    assert get(DOCTOR, path).status == 404


def test_a_server_without_the_build_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(ohif, "APP_DIR", tmp_path / "absent")
    answer = get(DOCTOR, "/ohif/")
    assert answer.status == 503 and b"make install" in answer.body

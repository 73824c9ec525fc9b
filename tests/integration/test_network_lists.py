"""The lists Orthanc Explorer 2 asks for whoever signs in (`/peers`, `/modalities`, `/tools/labels`):
the Gate answers them, Orthanc's own bytes for admins (checked against plain Orthanc with the same
peers and modalities), none for anyone else, nothing for anonymous callers."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import Server, start_gate
from tests.harness import OrthancProcess

NETWORK = {"OrthancPeers": {"branch": {"Url": "http://127.0.0.1:9/"}},
           "DicomModalities": {"ct1": {"AET": "CT1", "Host": "127.0.0.1", "Port": 9}}}
PATHS = ("/peers", "/peers?expand", "/modalities", "/modalities?expand", "/tools/labels")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory):
    plain = OrthancProcess(tmp_path_factory.mktemp("lists-plain"), script=None, extra=NETWORK)
    gate: Server | None = None
    try:
        plain.start()
        gate = start_gate(tmp_path_factory.mktemp("lists-gate"), extra=NETWORK)
        yield plain, gate
    finally:
        if gate is not None:
            gate.proc.stop()
        plain.stop()


@pytest.mark.parametrize("accept", ["application/json", "application/xml"])
@pytest.mark.parametrize("path", PATHS)
def test_an_admin_gets_orthancs_own_answer(servers, path, accept):
    plain, gate = servers
    own = requests.get(plain.url(path), headers={"Accept": accept}, timeout=10)
    ours = gate.admin("GET", path, headers={"Accept": accept})
    assert ours.status_code == own.status_code
    if own.status_code == 200:
        assert ours.headers["Content-Type"] == own.headers["Content-Type"]
        assert ours.content == own.content


@pytest.mark.parametrize("path", PATHS)
def test_others_get_none_and_anonymous_nothing(servers, path):
    _plain, gate = servers
    answer = gate.doctor("GET", path)
    assert answer.status_code == 200, answer.text
    assert answer.json() == ({} if path.endswith("?expand") else [])
    assert requests.get(gate.url(path), timeout=10).status_code == 403


@pytest.mark.parametrize("path", ["/peers/", "//peers", "/modalities/?expand", "/PEERS", "/Modalities"])
def test_no_other_spelling_gives_others_orthancs_list(servers, path):
    _plain, gate = servers
    answer = gate.doctor("GET", path)
    assert answer.status_code in (200, 403, 404), answer.status_code
    assert b"branch" not in answer.content and b"ct1" not in answer.content.lower()

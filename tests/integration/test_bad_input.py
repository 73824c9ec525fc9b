"""Hostile and broken requests: a clear refusal, audited where the Gate sees it, no trace, and
Orthanc keeps serving."""

from __future__ import annotations

import socket

import pytest
import requests
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import PatientRootQueryRetrieveInformationModelFind

from tests.conftest import Server, wait_for_audit


def raw_request(server: Server, request_line: bytes, headers: bytes = b"") -> bytes:
    """Send bytes no HTTP library would send (e.g. a path that is not UTF-8)."""
    with socket.create_connection(("127.0.0.1", server.proc.http_port), timeout=10) as conn:
        conn.sendall(request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers + b"\r\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def still_serving(server: Server) -> bool:
    return requests.get(server.url("/gate/health"), timeout=10).status_code == 200 and \
        server.admin("GET", "/patients").status_code == 200


def no_trace(text: str) -> bool:
    return "Traceback" not in text and "File \"" not in text and "sqlalchemy" not in text.lower()


@pytest.mark.parametrize("header", ["Basic %%%%", "Basic " + "A" * 7, "Basic", "Bearer", "Digest abc",
                                    "Basic dXNlcm5hbWUtd2l0aG91dC1jb2xvbg=="])
def test_malformed_authorization_is_refused(server: Server, header):
    answer = requests.get(server.url("/patients"), headers={"Authorization": header}, timeout=10)
    assert answer.status_code in (400, 403)
    assert no_trace(answer.text)
    api = requests.get(server.url("/gate/api/me"), headers={"Authorization": header}, timeout=10)
    assert api.status_code in (400, 401)
    assert still_serving(server)


def test_malformed_basic_reaching_the_gate_is_audited(server: Server):
    answer = requests.get(server.url("/patients"), headers={"Authorization": "Basic dXNlcm5hbWUtbm8tY29sb24="},
                          timeout=10)
    assert answer.status_code == 403
    assert wait_for_audit(server, "outcome='deny' AND reason LIKE '%malformed Basic%'")


def test_unknown_api_key_is_refused_and_audited(server: Server):
    headers = {"Authorization": "Bearer " + "Z" * 43}
    assert requests.get(server.url("/instances"), headers=headers, timeout=10).status_code == 403
    assert requests.get(server.url("/gate/api/me"), headers=headers, timeout=10).status_code == 401
    assert wait_for_audit(server, "outcome='deny' AND reason LIKE '%unknown API key%'")


def test_a_path_that_is_not_utf8_is_refused_without_a_trace(server: Server):
    # Orthanc's Python plugin cannot turn such a path into a Python string and refuses the request
    # itself (500) before the Gate is called: refused, nothing served, no trace, still serving.
    answer = raw_request(server, b"GET /patients/%ff%fe HTTP/1.1",
                         b"Authorization: Bearer " + server.admin_key.encode() + b"\r\n")
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 403, 404, 500)
    body = answer.split(b"\r\n\r\n", 1)[1].decode("latin-1")
    assert no_trace(body) and "GATE-P001" not in body
    assert still_serving(server)


def test_a_100_kb_header_is_refused(server: Server):
    answer = requests.get(server.url("/patients"), headers={"X-Padding": "x" * 100_000,
                                                            "Authorization": f"Bearer {server.admin_key}"},
                          timeout=10)
    assert answer.status_code in (400, 413, 431)
    assert still_serving(server)


@pytest.mark.parametrize("username", ["' OR '1'='1", "admin'--", "root1\" OR 1=1 --", "x; DROP TABLE users;",
                                      "../../etc/passwd", "*", "root1\x00"])
def test_sql_ish_and_odd_usernames_sign_in_as_nobody(server: Server, username):
    answer = requests.post(server.url("/gate/login"), json={"username": username, "password": "' OR '1'='1"},
                           timeout=10)
    assert answer.status_code == 401
    basic = requests.get(server.url("/patients"), auth=(username, "' OR '1'='1"), timeout=10)
    assert basic.status_code in (400, 403)
    assert still_serving(server)


@pytest.mark.parametrize("path", ["/gate/static/../../plugin/entry.py", "/gate/static/..%2f..%2fplugin%2fentry.py",
                                  "/gate/static/%2e%2e/%2e%2e/etc/passwd", "/app/../../../etc/passwd",
                                  "/instances/../../etc/passwd", "/gate/static/%2e%2e%2fentry.py"])
def test_path_traversal_serves_nothing_from_disk(server: Server, path):
    answer = requests.get(server.url(path), auth=("drnkosi", "doctor password 123"), timeout=10)
    assert answer.status_code in (400, 401, 403, 404)
    assert "root:x:0:0" not in answer.text and "import" not in answer.text
    assert still_serving(server)


def test_bad_json_to_the_login_is_a_clear_400(server: Server):
    answer = requests.post(server.url("/gate/login"), data=b"{not json", timeout=10,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"
    assert no_trace(answer.text)


def test_unknown_modality_cannot_query_over_dicom(server: Server):
    # C-FIND bypasses HTTP and the Gate: the configuration must refuse unknown callers.
    ae = AE(ae_title="INTRUDER")
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", server.proc.dicom_port, ae_title="ORTHANC")
    matches = []
    if assoc.is_established:
        query = Dataset()
        query.QueryRetrieveLevel = "PATIENT"
        query.PatientID = ""
        for status, identifier in assoc.send_c_find(query, PatientRootQueryRetrieveInformationModelFind):
            if identifier is not None and status and status.Status in (0xFF00, 0xFF01):
                matches.append(identifier)
        assoc.release()
    assert matches == []

"""Shared fixtures: one real Orthanc with the Gate for the integration tests, with users and data."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import requests

from tests.harness import OrthancProcess, storescu

SAMPLES = Path(__file__).resolve().parent / "dicom-samples"
DICOMDIR_SET = Path(pydicom.__file__).resolve().parent / "data" / "test_files" / "dicomdirtests"

ADMIN, ADMIN_PASSWORD = "root1", "admin password 123"
DOCTOR, DOCTOR_PASSWORD = "drnkosi", "doctor password 123"

# Settings that make failures show quickly in tests; everything else is the shipped default.
# Admins are not made to prove a one-time code here, so tests can sign them in as often as they
# like (a code is good once per 30 s); test_mfa.py runs the default, admins-must-use-MFA, setup.
# Tests make many deliberate failures from 127.0.0.1, so lockout and throttling are out of their
# way here; their own tests (test_lockout.py, test_sign_in.py) run the shipped limits.
TEST_GATE_CONFIG = {"DatabaseTimeoutSeconds": 1, "MfaRequiredRoles": [], "LockoutFailures": 100000,
                    "SignInFailuresPerAddress": 100000}


def dicomdir_files() -> list[Path]:
    """pydicom's DICOMDIR test set: 3 patients, 7 studies (the DICOMDIR files themselves excluded)."""
    return sorted(p for p in DICOMDIR_SET.rglob("*")
                  if p.is_file() and not p.name.startswith("DICOMDIR") and _is_dicom_file(p))


def _is_dicom_file(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(132)[128:] == b"DICM"


@dataclass
class Server:
    proc: OrthancProcess
    admin_key: str
    doctor_key: str

    def url(self, path: str) -> str:
        return self.proc.url(path)

    def admin(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.admin_key}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url(path), headers=headers, timeout=30, **kwargs)

    def doctor(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.url(path), auth=(DOCTOR, DOCTOR_PASSWORD), timeout=30, **kwargs)

    def anonymous(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.url(path), timeout=30, allow_redirects=False, **kwargs)


def audit_rows(server: Server, where: str = "1=1", params: tuple = ()) -> list[sqlite3.Row]:
    """Audit rows straight from the store (read-only, beside the running server). `where` uses
    SQLite's ? placeholders, on PostgreSQL too."""
    url = server.proc.database_url
    if url.startswith("postgresql"):
        return postgres_rows(url, f"SELECT * FROM audit_events WHERE {where} ORDER BY id", params)
    db = sqlite3.connect(f"file:{server.proc.database}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(f"SELECT * FROM audit_events WHERE {where} ORDER BY id", params).fetchall()
    finally:
        db.close()


class Row(dict):
    """A row read by name, or by position as sqlite3.Row allows."""

    def __getitem__(self, key):  # noqa: ANN001, ANN204
        return list(self.values())[key] if isinstance(key, int) else super().__getitem__(key)


def postgres_rows(url: str, query: str, params: tuple = ()) -> list[Row]:
    """Rows of a query on the PostgreSQL store at `url` (SQLAlchemy form), `?` placeholders."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), row_factory=dict_row) as db:
        return [Row(row) for row in db.execute(query.replace("%", "%%").replace("?", "%s"), params).fetchall()]


def wait_for_audit(server: Server, where: str, params: tuple = (), seconds: float = 5.0,
                   until: Callable[[list[sqlite3.Row]], bool] = bool) -> list[sqlite3.Row]:
    """Denials are written by the audit writer shortly after the answer: poll for them, bounded,
    until some are there (or until `until` says the rows are all there)."""
    deadline = time.monotonic() + seconds
    while True:
        rows = audit_rows(server, where, params)
        if until(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def upload_dicomdir(srv: Server) -> None:
    """pydicom's DICOMDIR set (3 patients, 7 studies), uploaded by the admin over REST."""
    for path in dicomdir_files():
        answer = srv.admin("POST", "/instances", data=path.read_bytes())
        assert answer.status_code == 200, (path, answer.status_code)


def load_samples(srv: Server) -> None:
    """The generated samples pushed over DICOM (storescu), pydicom's DICOMDIR set over REST."""
    pushed = storescu(srv.proc.dicom_port, sorted(SAMPLES.glob("*.dcm")))
    assert pushed.returncode == 0, pushed.stderr
    upload_dicomdir(srv)


def start_gate(workdir: Path, gate: dict | None = None, extra: dict | None = None) -> Server:
    proc = OrthancProcess(workdir, gate={**TEST_GATE_CONFIG, **(gate or {})}, extra=extra)
    outputs = proc.gatectl_many([
        # Passwords the tests use at once, over Basic too: not to be changed at the first sign-in.
        (["create-user", ADMIN, "--role", "admin", "--password-stdin", "--no-password-change"], ADMIN_PASSWORD + "\n"),
        (["create-user", DOCTOR, "--role", "referring_doctor", "--password-stdin", "--no-password-change"],
         DOCTOR_PASSWORD + "\n"),
        (["create-api-key", "tests", "--user", ADMIN], None),
        (["create-api-key", "tests", "--user", DOCTOR], None)])
    admin_key, doctor_key = (output.strip().splitlines()[-1] for output in outputs[2:])
    proc.start()
    return Server(proc, admin_key, doctor_key)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A running Orthanc with the Gate, WebDAV on (to prove it is gated), and sample data loaded:
    the generated samples pushed over DICOM (storescu), pydicom's DICOMDIR set over REST."""
    srv = start_gate(tmp_path_factory.mktemp("gate"), extra={"WebDavEnabled": True})
    try:
        load_samples(srv)
        yield srv
    finally:
        srv.proc.stop()


@pytest.fixture(scope="session")
def sample(server: Server) -> dict[str, str]:
    """Orthanc ids and DICOM UIDs of one instance of the generated samples."""
    instance_id = server.admin("POST", "/tools/lookup", data="1.2.826.0.1.3680043.10.1192.1.1.1").json()[0]["ID"]
    tags = server.admin("GET", f"/instances/{instance_id}/simplified-tags").json()
    parents = server.admin("GET", f"/instances/{instance_id}/study").json()
    return {"instance": instance_id, "study": parents["ID"], "patient": parents["ParentPatient"],
            "study_uid": tags["StudyInstanceUID"], "series_uid": tags["SeriesInstanceUID"],
            "sop_uid": tags["SOPInstanceUID"]}

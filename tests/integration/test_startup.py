"""Start-up fails closed: bad configuration stops Orthanc, a store that is down refuses requests."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import requests

from plugin.config import config_base, load_gate_config, read_orthanc_config
from tests.conftest import TEST_GATE_CONFIG, start_gate
from tests.harness import OrthancProcess, storescu

REPO = Path(__file__).resolve().parents[2]


def refused_start(tmp_path: Path, gate: dict) -> str:
    proc = OrthancProcess(tmp_path, gate=gate)
    proc.start(wait=False)
    code = proc.wait_exit(timeout=30)
    assert code != 0
    return proc.log_text()


def test_unknown_gate_key_stops_orthanc_and_names_the_key(tmp_path):
    log = refused_start(tmp_path, {"AuditCoalesceSecond": 60})
    assert "Gate.AuditCoalesceSecond" in log


def test_wrong_type_stops_orthanc_and_names_the_key(tmp_path):
    log = refused_start(tmp_path, {"SessionIdleMinutes": "thirty"})
    assert "Gate.SessionIdleMinutes must be a number" in log


def test_missing_named_key_file_stops_orthanc(tmp_path):
    log = refused_start(tmp_path, {"AuditCheckpointKeyFile": str(tmp_path / "absent.key")})
    assert "Gate.AuditCheckpointKeyFile: key file not found" in log


def test_unusable_store_at_start_refuses_everything_but_health(tmp_path):
    proc = OrthancProcess(tmp_path, gate=TEST_GATE_CONFIG)
    proc.database.parent.mkdir(parents=True)
    proc.database.write_bytes(b"this is not an SQLite database" * 100)
    proc.start()
    try:
        health = requests.get(proc.url("/gate/health"), timeout=10)
        assert health.status_code == 503
        assert "store unavailable at start-up" in health.json()["reason"]
        for path in ("/patients", "/app/explorer.html", "/gate/login", "/"):
            assert requests.get(proc.url(path), timeout=10).status_code == 403, path
    finally:
        proc.stop()


def test_generated_secrets_are_root_only_and_logged(tmp_path):
    srv = start_gate(tmp_path)
    try:
        storage = tmp_path / "storage"
        for name in ("gate-audit-checkpoint.key", "gate-contact.key", "gate.sqlite"):
            assert (storage / name).stat().st_mode & 0o077 == 0, name
    finally:
        srv.proc.stop()


def test_shipped_configuration_is_valid_and_locked_down():
    config = read_orthanc_config(REPO / "orthanc.json")
    load_gate_config(config, config_base(REPO / "orthanc.json"))
    assert config["AuthenticationEnabled"] is False and config["RemoteAccessAllowed"] is True
    assert config["WebDavEnabled"] is False
    for key in ("DicomAlwaysAllowFind", "DicomAlwaysAllowGet", "DicomAlwaysAllowMove",
                "DicomAlwaysAllowFindWorklist"):
        assert config[key] is False, key
    assert config["DicomModalities"] == {}
    assert config["PythonScript"].endswith("/plugin/entry.py")
    assert config["Python"] == {"AllowThreads": True}


def test_store_made_unavailable_while_running_refuses_images_and_health_says_why(tmp_path):
    srv = start_gate(tmp_path)
    try:
        instance, unread = (srv.admin("POST", "/instances", data=(REPO / f"tests/dicom-samples/{name}").read_bytes())
                            .json()["ID"] for name in ("patient1-instance1.dcm", "patient2-instance1.dcm"))
        assert srv.admin("GET", f"/instances/{instance}/file").status_code == 200
        locker = sqlite3.connect(srv.proc.database, timeout=10, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            # A read whose audit row cannot be committed is not served, even before anything
            # noticed the outage.
            first = srv.admin("GET", f"/instances/{unread}/file")
            assert first.status_code == 403 and b"DICM" not in first.content
            deadline = time.monotonic() + 15
            while requests.get(srv.url("/gate/health"), timeout=10).status_code != 503:
                # Reads keep being attempted; each needs its audit row and so finds the lock.
                srv.admin("GET", f"/instances/{instance}/simplified-tags")
                assert time.monotonic() < deadline, "health never noticed the store was down"
            health = requests.get(srv.url("/gate/health"), timeout=10).json()
            assert "store unavailable" in health["reason"] and "locked" in health["store"]
            for path in (f"/instances/{instance}/file", f"/instances/{instance}/preview"):
                answer = srv.admin("GET", path)
                assert answer.status_code == 403, path
                assert b"DICM" not in answer.content
            # The lists are answered by the plugin, which refuses with 503 when it cannot audit.
            listed = srv.admin("GET", "/patients")
            assert listed.status_code == 503 and listed.json()["error"] == "store_unavailable"
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        deadline = time.monotonic() + 15
        while requests.get(srv.url("/gate/health"), timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "health never recovered"
            time.sleep(0.2)
        assert srv.admin("GET", f"/instances/{instance}/file").status_code == 200
        srv.proc.stop()
        # The refusals made while the store was down were spooled and are in the chain now.
        db = sqlite3.connect(srv.proc.database)
        reasons = [r for (r,) in db.execute("SELECT reason FROM audit_events WHERE outcome='deny'")]
        db.close()
        assert any("store unavailable" in r for r in reasons)
        assert "audit chain OK" in srv.proc.gatectl("audit-verify").stdout
    finally:
        srv.proc.stop()


def test_config_from_test_fixtures_uses_only_known_keys():
    # The tests' own overrides must stay valid keys, or every integration test would fail to start.
    load_gate_config({"Gate": TEST_GATE_CONFIG}, "/tmp")


def test_stores_from_any_modality_are_named_in_the_log_and_can_be_limited_to_listed_ones(tmp_path):
    open_server = start_gate(tmp_path / "open")
    try:
        assert "C-STORE is accepted from any AE title" in open_server.proc.log_text()
    finally:
        open_server.proc.stop()
    samples = sorted((REPO / "tests" / "dicom-samples").glob("*.dcm"))[:1]
    listed = start_gate(tmp_path / "listed", extra={
        "DicomAlwaysAllowStore": False, "DicomCheckModalityHost": True,
        "DicomModalities": {"ct-room-1": {"AET": "CTROOM1", "Host": "127.0.0.1", "Port": 104, "AllowStore": True}}})
    try:
        assert "C-STORE is accepted from any AE title" not in listed.proc.log_text()
        stranger = storescu(listed.proc.dicom_port, samples, aet="STRANGER")
        assert stranger.returncode != 0
        assert listed.admin("GET", "/instances").json() == []
        known = storescu(listed.proc.dicom_port, samples, aet="CTROOM1")
        assert known.returncode == 0, known.stderr
        assert len(listed.admin("GET", "/instances").json()) == 1
    finally:
        listed.proc.stop()


def test_a_python_plugin_holding_its_lock_is_named_in_the_log_where_it_could_let_go(tmp_path):
    """Python plugin 4.3+ (Orthanc 1.12) has Python.AllowThreads; 4.0 (Debian 12) has not."""
    held = start_gate(tmp_path / "held", extra={"Python": {"AllowThreads": False}})
    try:
        version = held.admin("GET", "/plugins/python").json()["Version"]
        can_let_go = tuple(int(part) for part in version.split(".")[:2]) >= (4, 3)
        deadline = time.time() + 10  # written once Orthanc has started
        while can_let_go and "AllowThreads" not in held.proc.log_text() and time.time() < deadline:
            time.sleep(0.1)
        assert ('"Python": {"AllowThreads": true}' in held.proc.log_text()) is can_let_go, version
    finally:
        held.proc.stop()
    shipped = start_gate(tmp_path / "shipped")  # the harness's configuration, as orthanc.json has it
    try:
        assert shipped.admin("GET", "/gate/health").status_code == 200
        assert "AllowThreads" not in shipped.proc.log_text()
    finally:
        shipped.proc.stop()

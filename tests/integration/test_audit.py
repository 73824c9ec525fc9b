"""The audit log on a real server: what gets a row, coalescing, tamper evidence, crash safety."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from plugin.audit.chain import GENESIS_HASH, row_hash
from tests.conftest import Server, audit_rows, start_gate, wait_for_audit
from tests.integration.grants_support import grant, new_doctor

REPO = Path(__file__).resolve().parents[2]
SAMPLE_FILES = sorted((REPO / "tests" / "dicom-samples").glob("*.dcm"))


def push_samples(srv: Server) -> list[str]:
    return [srv.admin("POST", "/instances", data=p.read_bytes()).json()["ID"] for p in SAMPLE_FILES]


def test_reads_of_patient_data_are_audited_with_the_resource(server: Server, sample):
    assert server.admin("GET", f"/instances/{sample['instance']}/file").status_code == 200
    rows = wait_for_audit(server, "orthanc_id=? AND action='download' AND outcome='allow'", (sample["instance"],))
    assert rows and rows[0]["actor"] == "root1" and rows[0]["roles"] == "admin"
    assert rows[0]["route_class"] == "instances" and rows[0]["source_ip"] == "127.0.0.1"


def test_a_refusal_gets_a_row_at_once_and_its_repeats_a_count(server: Server, sample):
    """Denials coalesce like reads (actor, route family, reason, what was asked for): the first of
    a kind is in the store at once, repeats are counted in a row written when the window closes."""
    asked = "actor='drnkosi' AND outcome='deny' AND orthanc_id=?"
    for _ in range(3):
        assert server.doctor("GET", f"/instances/{sample['instance']}/file").status_code == 403
    assert wait_for_audit(server, asked, (sample["instance"],))


def test_a_flood_of_refused_requests_adds_a_few_rows_and_the_chain_holds(tmp_path):
    srv = start_gate(tmp_path, gate={"SignInFailuresPerAddress": 3})
    try:
        before = len(audit_rows(srv))
        for _ in range(3):
            assert requests.post(srv.url("/gate/login"), json={"username": "x", "password": "y"}, timeout=10
                                 ).status_code == 401
        for _ in range(200):  # refused unchecked: the address is throttled
            assert requests.post(srv.url("/gate/login"), json={"username": "x", "password": "y"}, timeout=10
                                 ).json()["error"] == "rate_limited"
        paths = ["/patients", "/studies/abc", "/instances/abc/file", "/dicom-web/studies", "/jobs", "/tools/reset",
                 "/app/explorer.js", "/nowhere", "/system", "/wado?requestType=WADO&objectUID=1.2.3"]
        with requests.Session() as anonymous:
            for n in range(2000):
                assert anonymous.get(srv.url(paths[n % len(paths)]), timeout=10).status_code == 403
    finally:
        srv.proc.stop()  # closes the coalescing windows: the counts are written at shutdown
    added = [row for row in audit_rows(srv)[before:] if row["outcome"] == "deny"]
    assert len(added) <= 2 * len(paths), len(added)  # one row and one count per kind of refusal
    assert sum(row["count"] for row in added) == 2000
    logins = [row for row in audit_rows(srv)[before:] if row["action"] == "login"]
    assert len(logins) <= 3 + 2 and sum(row["count"] for row in logins) == 203
    verified = srv.proc.gatectl("audit-verify")
    assert verified.returncode == 0 and "audit chain OK" in verified.stdout
    print(f"2000 anonymous refusals added {len(added)} audit rows, 203 refused sign-ins {len(logins)}")


def test_many_frames_of_one_resource_make_one_event_with_a_count(tmp_path):
    srv = start_gate(tmp_path)
    try:
        instance = push_samples(srv)[0]
        for _ in range(50):
            assert srv.admin("GET", f"/instances/{instance}/preview").status_code == 200
        srv.proc.stop()  # closes the coalescing windows: the count is written at shutdown
        rows = audit_rows(srv, "orthanc_id=? AND path LIKE '%/preview'", (instance,))
        assert len(rows) == 2
        assert rows[0]["count"] == 1 and rows[1]["count"] == 49
        assert json.loads(rows[1]["detail"])["coalesced_into"] == rows[0]["id"]
    finally:
        srv.proc.stop()


def test_identical_answers_of_a_search_make_one_event_with_a_count(tmp_path):
    """A list or search the plugin answers is recorded with whose data it held; the same answer to
    the same caller again (the DICOMweb plugin of Orthanc 1.12 asks /tools/find once per frame a
    viewer fetches) is counted in the first one's window, and a different answer gets its own row."""
    srv = start_gate(tmp_path)
    try:
        push_samples(srv)
        patients = [p["MainDicomTags"]["PatientID"] for p in srv.admin("GET", "/patients?expand").json()]
        doctor = new_doctor(srv, "drsearching")
        grant(srv, doctor.username, "view_only", patient_id=patients[0])
        mine = {"Level": "Study", "Query": {"PatientID": patients[0]}, "Expand": True}
        for _ in range(20):
            answer = doctor("POST", "/tools/find", json=mine)
            assert answer.status_code == 200 and len(answer.json()) >= 1
        assert doctor("POST", "/tools/find", json={"Level": "Study", "Query": {"PatientID": "nobody"}}).json() == []
        srv.proc.stop()  # closes the coalescing windows: the count is written at shutdown
        rows = audit_rows(srv, "actor='drsearching' AND route_class='tools_find'")
        assert [(r["patient_id"], r["count"]) for r in rows] == [(patients[0], 1), ("", 1), (patients[0], 19)]
        assert json.loads(rows[2]["detail"])["coalesced_into"] == rows[0]["id"]
        verified = srv.proc.gatectl("audit-verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        srv.proc.stop()


def _tamper(database: Path, statements: list[str]) -> None:
    db = sqlite3.connect(database)
    db.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
    db.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def _rechain(database: Path) -> None:
    """What an attacker with database access does: recompute every hash and the head."""
    db = sqlite3.connect(database)
    db.row_factory = sqlite3.Row
    prev = GENESIS_HASH
    for row in db.execute("SELECT * FROM audit_events ORDER BY id").fetchall():
        fields = dict(row)
        fields["prev_hash"] = prev
        prev = row_hash(fields)
        db.execute("UPDATE audit_events SET prev_hash=?, row_hash=? WHERE id=?", (fields["prev_hash"], prev, row["id"]))
    last = db.execute("SELECT max(id) FROM audit_events").fetchone()[0]
    db.execute("UPDATE audit_head SET last_id=?, last_hash=?", (last, prev))
    db.commit()
    db.close()


def test_audit_verify_passes_then_names_an_edited_row_and_catches_a_rewrite(tmp_path):
    srv = start_gate(tmp_path)
    try:
        for instance in push_samples(srv):
            srv.admin("GET", f"/instances/{instance}")
            srv.doctor("GET", f"/instances/{instance}")
    finally:
        srv.proc.stop()  # writes a final checkpoint
    ok = srv.proc.gatectl("audit-verify")
    assert ok.returncode == 0 and "audit chain OK" in ok.stdout

    # The append-only trigger refuses a plain UPDATE...
    db = sqlite3.connect(srv.proc.database)
    try:
        db.execute("UPDATE audit_events SET reason='x' WHERE id=5")
        raise AssertionError("UPDATE of the audit table was not refused")
    except sqlite3.IntegrityError as exc:
        assert "append-only" in str(exc)
    finally:
        db.close()

    # ...and someone who drops it and edits one row is named.
    _tamper(srv.proc.database, ["UPDATE audit_events SET actor='someone-else' WHERE id=5"])
    broken = srv.proc.gatectl("audit-verify", check=False)
    assert broken.returncode != 0
    assert "row 5" in broken.stderr

    # Rewriting the whole chain consistently is caught by the signed checkpoint.
    _rechain(srv.proc.database)
    rewritten = srv.proc.gatectl("audit-verify", check=False)
    assert rewritten.returncode != 0
    assert "checkpoint" in rewritten.stderr

    # Deleting the checkpoints from the database too does not hide it: a copy lives beside the key.
    _tamper(srv.proc.database, ["DELETE FROM audit_checkpoints"])
    hidden = srv.proc.gatectl("audit-verify", check=False)
    assert hidden.returncode != 0
    assert "missing from the database" in hidden.stderr


@pytest.mark.parametrize("window", [0.0, 60.0], ids=["every-request-its-own-row", "coalesced"])
def test_kill_9_under_load_loses_no_audit_of_a_served_request(tmp_path, window):
    srv = start_gate(tmp_path, gate={"AuditCoalesceSeconds": window})
    instances = push_samples(srv)
    study_of = {i: srv.admin("GET", f"/instances/{i}/simplified-tags").json()["StudyInstanceUID"] for i in instances}
    served: list[tuple[float, float, str, str]] = []  # (sent, answered, instance, sub-route)
    stop = threading.Event()

    def load(offset: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {srv.admin_key}"
        for n in range(2000):  # bounded: the kill comes long before this ends
            if stop.is_set():
                return
            instance = instances[(n + offset) % len(instances)]
            sub = ("file", "preview", "simplified-tags")[n % 3]
            sent = time.time()
            try:
                answer = session.get(srv.url(f"/instances/{instance}/{sub}"), timeout=5)
            except requests.RequestException:
                return
            if answer.status_code == 200:
                served.append((sent, time.time(), instance, sub))

    workers = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 30
    while len(served) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.proc.kill9()
    stop.set()
    for worker in workers:
        worker.join(timeout=10)
    assert len(served) >= 300

    srv.proc.start()
    try:
        db = sqlite3.connect(srv.proc.database)
        allowed = db.execute("SELECT ts, study_uid, action FROM audit_events WHERE outcome='allow' "
                             "AND actor='root1' AND route_class='instances'").fetchall()
        db.close()
        coverage: dict[tuple[str, str], list[float]] = {}
        for ts, study_uid, action in allowed:
            stamp = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
            coverage.setdefault((study_uid, action), []).append(stamp)
        for sent, answered, instance, sub in served:
            # Reads coalesce by (actor, study, action, outcome): /file is a download, the rest views.
            stamps = coverage.get((study_of[instance], "download" if sub == "file" else "view"), [])
            # Covered by its own row or by the row that opened its coalescing window.
            assert any(answered + 1 >= s >= sent - window - 1 for s in stamps), (instance, sub, sent)
        ok = srv.proc.gatectl("audit-verify")
        assert "audit chain OK" in ok.stdout
    finally:
        srv.proc.stop()


def test_the_chain_links_rows_with_sha256(server: Server):
    rows = audit_rows(server)[:3]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    for earlier, later in zip(rows, rows[1:], strict=False):
        assert later["prev_hash"] == earlier["row_hash"]
    assert len(rows[0]["row_hash"]) == len(hashlib.sha256().hexdigest())

"""Orthanc with the Gate stops cleanly on SIGTERM, under load: exit code 0, every answered read in
the audit, the chain signed and whole. (Orthanc 1.12's Python plugin frees REST callbacks without
the GIL at stop: plugin/orthanc_api.py keeps them referenced so that it does not crash.)"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from tests.conftest import audit_rows, start_gate

SAMPLE = sorted((Path(__file__).resolve().parents[1] / "dicom-samples").glob("*.dcm"))[0]


def test_sigterm_under_load_exits_0_with_every_answered_read_audited(tmp_path):
    # Reads coalesce (docs/audit.md): a first row, then a row with the count, written at stop.
    srv = start_gate(tmp_path)
    instance = srv.admin("POST", "/instances", data=SAMPLE.read_bytes()).json()["ID"]
    answered: list[int] = []
    stop = threading.Event()

    def reader(k: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                answer = srv.admin("GET", f"/instances/{instance}/simplified-tags?reader={k}&n={n}")
            except Exception:  # noqa: BLE001 - the server is going away: connection refused or reset
                time.sleep(0.01)
                continue
            if answer.status_code == 200:
                answered.append(1)

    readers = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for thread in readers:
        thread.start()
    try:
        time.sleep(1.5)
        started = time.monotonic()
        os.kill(srv.proc.pid, signal.SIGTERM)
        code = srv.proc.wait_exit(timeout=60)
        took = time.monotonic() - started
    finally:
        stop.set()
        for thread in readers:
            thread.join()
        srv.proc.stop()
    rows = audit_rows(srv, "outcome='allow' AND path=?", (f"/instances/{instance}/simplified-tags",))
    counted = sum(row["count"] for row in rows)
    print(f"SIGTERM: exit {code} after {took:.2f} s; {len(answered)} reads answered, {counted} in the audit "
          f"({len(rows)} rows)")
    assert code == 0, srv.proc.log_tail()
    assert answered and counted >= len(answered)
    verified = srv.proc.gatectl("audit-verify")
    assert verified.returncode == 0 and "audit chain OK" in verified.stdout

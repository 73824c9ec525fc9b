"""Grants: what per-grant enforcement costs a doctor, measured against references in the same run.

(a) Doctor download throughput. Three Orthanc servers side by side (plain, a trivial Python
    filter, the Gate) each hold one small instance; on the Gate a referring doctor holds a
    `download` grant on its patient. wrk (16 connections, 2 threads) fetches
    GET /instances/{id}/file with the doctor's session cookie and with HTTP Basic, interleaved
    over --rounds rounds (medians kept). `doctor_vs_trivial_filter` is the worse of the two
    Gate figures over the trivial filter's for the same request (goal: >= 0.9).
(b) Grant-check cost against the size of the grant table: two stores (SQLite, migrated like
    production), one holding 1,000 grants and one 1,000,000, each with the same doctor holding 20
    of them. A check with nothing cached (the caller's grant set read from the store, then the
    level held on one study) is timed --checks times in each; `grant_check_1m_vs_1k` is the
    1M median over the 1k median (goal: <= 1.2). The cached check (a dict lookup) is printed too.
(c) /tools/find as a doctor holding 1,000 study grants among --studies studies (default
    100,000): the index is generated fast (bench/index.py, one tiny instance per study, into a
    plain Orthanc), then the Gate is started on that same storage and the doctor is granted 1,000
    studies in one bulk call. `doctor_find_ms` is the median time of POST /tools/find
    {"Level": "Study", "Query": {}} as the doctor (goal: <= 100 ms); an admin's unconstrained find
    over every study is printed beside it.

The last line: `doctor_vs_trivial_filter=R grant_check_1m_vs_1k=R doctor_find_ms=N`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from bench.gate_throughput import SAMPLE, TRIVIAL_FILTER, wrk  # noqa: E402
from bench.index import data_directory, populate  # noqa: E402
from plugin.services.access import AccessService, ResourceLocator  # noqa: E402
from plugin.services.core import orthanc_id  # noqa: E402
from plugin.store.db import Store  # noqa: E402
from plugin.store.models import Grant  # noqa: E402
from tests.harness import OrthancProcess  # noqa: E402

ADMIN, ADMIN_PASSWORD = "benchadmin", "bench password 123"
DOCTOR, DOCTOR_PASSWORD = "benchdoctor", "doctor password 123"
SERVERS = ("plain", "trivial filter", "gate")
LEVELS = ("view_only", "download", "annotate", "report", "share", "full")


class BenchError(RuntimeError):
    pass


# -- (a) throughput ------------------------------------------------------------------------------

def throughput(tmp: Path, seconds: float, rounds: int) -> tuple[float, dict]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "trivial.py").write_text(TRIVIAL_FILTER)
    servers = {"plain": OrthancProcess(tmp / "plain", script=None),
               "trivial filter": OrthancProcess(tmp / "trivial", script=str(tmp / "trivial.py")),
               "gate": OrthancProcess(tmp / "gate")}
    gate = servers["gate"]
    gate.create_user(ADMIN, ["admin"], ADMIN_PASSWORD)
    gate.create_user(DOCTOR, ["referring_doctor"], DOCTOR_PASSWORD)
    admin_key = gate.create_api_key("bench", ADMIN)
    samples: dict[tuple[str, str], list[float]] = {}
    try:
        for proc in servers.values():
            proc.start()
        urls = {}
        for name, proc in servers.items():
            stored = requests.post(proc.url("/instances"), data=SAMPLE.read_bytes(),
                                   headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)
            stored.raise_for_status()
            urls[name] = proc.url(f"/instances/{stored.json()['ID']}/file")
        as_admin = {"Authorization": f"Bearer {admin_key}"}
        patient_id = requests.get(urls["gate"].rsplit("/", 1)[0] + "/simplified-tags", timeout=30,
                                  headers=as_admin).json()["PatientID"]
        granted = requests.post(gate.url("/gate/api/grants"), timeout=30, headers=as_admin,
                                json={"user": DOCTOR, "patient_id": patient_id, "level": "download"})
        granted.raise_for_status()
        signed = requests.post(gate.url("/gate/login"), json={"username": DOCTOR, "password": DOCTOR_PASSWORD},
                               timeout=30)
        signed.raise_for_status()
        basic = requests.auth._basic_auth_str(DOCTOR, DOCTOR_PASSWORD)
        credentials = {"cookie": f"Cookie: gate_session={signed.cookies['gate_session']}",
                       "basic": f"Authorization: {basic}"}
        for name in SERVERS:
            wrk(urls[name], 1, credentials["cookie"])  # warm-up; fails unless every answer is 2xx
        for _ in range(rounds):
            for case, header in credentials.items():
                for name in SERVERS:
                    samples.setdefault((name, case), []).append(wrk(urls[name], seconds, header))
    finally:
        for proc in servers.values():
            proc.stop()
    median = {key: statistics.median(values) for key, values in samples.items()}
    print(f"\n(a) doctor download GET /instances/ID/file, requests/s, median of {rounds} round(s) of {seconds:g} s")
    for name in SERVERS:
        print(f"    {name:<16}" + "".join(f"{case}={median[(name, case)]:.0f}  " for case in credentials))
    ratio = min(median[("gate", case)] / median[("trivial filter", case)] for case in credentials)
    return ratio, median


# -- (b) grant-check cost ------------------------------------------------------------------------

def grant_store(path: Path, total: int, doctor_grants: int) -> tuple[Store, list[str]]:
    """A migrated store with `total` grants, `doctor_grants` of them the doctor's (on studies)."""
    store = Store(f"sqlite:///{path}", 30)
    store.upgrade()
    others = total - doctor_grants
    now = time.time()
    with store.transaction() as db:
        rows = ({"subject_user": f"user{i % 5000:05d}", "study_uid": f"1.2.826.0.1.3680043.10.1192.8.{i}",
                 "level": LEVELS[i % len(LEVELS)], "source": "bench", "created_at": now, "created_by": "bench"}
                for i in range(others))
        chunk: list[dict] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == 50000:
                db.execute(insert(Grant), chunk)
                chunk = []
        if chunk:
            db.execute(insert(Grant), chunk)
        mine = [f"1.2.826.0.1.3680043.10.1192.7.{i}" for i in range(doctor_grants)]
        db.execute(insert(Grant), [{"subject_user": DOCTOR, "study_uid": uid, "level": "download", "source": "bench",
                                    "created_at": now, "created_by": "bench"} for uid in mine])
    return store, mine


def check_cost(store: Store, study_uids: list[str], checks: int) -> tuple[float, float]:
    """Median microseconds of a check with nothing cached, and of a cached one."""
    access = AccessService(store, ResourceLocator(core=None))  # the store is all this measures
    cold, warm = [], []
    for i in range(checks):
        uid = study_uids[i % len(study_uids)]
        access.invalidate()
        started = time.perf_counter()
        held = access.grants_of(DOCTOR).on_study("P", uid, time.time())
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        again = access.grants_of(DOCTOR).on_study("P", uid, time.time())
        warm.append(time.perf_counter() - started)
        if held.level is None or again.level is None:
            raise BenchError("the doctor's grant was not found: the bench would measure a refusal")
    return statistics.median(cold) * 1e6, statistics.median(warm) * 1e6


def grant_checks(tmp: Path, checks: int, rounds: int = 3) -> float:
    """Both stores are built first, warmed, then measured in interleaved rounds (medians kept)."""
    stores = {}
    try:
        for total in (1_000, 1_000_000):
            started = time.perf_counter()
            stores[total] = grant_store(tmp / f"grants-{total}.sqlite", total, 20)
            print(f"    {total:>9,} grants built in {time.perf_counter() - started:.1f} s")
        for store, mine in stores.values():
            check_cost(store, mine, 50)  # warm-up: SQLAlchemy compiles its statements once
        samples: dict[int, list[tuple[float, float]]] = {}
        for _ in range(rounds):
            for total, (store, mine) in stores.items():
                samples.setdefault(total, []).append(check_cost(store, mine, checks))
    finally:
        for store, _ in stores.values():
            store.dispose()
    figures = {total: (statistics.median(c for c, _ in found), statistics.median(w for _, w in found))
               for total, found in samples.items()}
    for total, (cold, warm) in figures.items():
        print(f"    {total:>9,} grants: uncached check {cold:.0f} us, cached {warm:.2f} us")
    return figures[1_000_000][0] / figures[1_000][0]


# -- (c) /tools/find over a large index ----------------------------------------------------------

def doctor_find(tmp: Path, studies: int, granted: int, repeat: int) -> float:
    data = data_directory(tmp, studies)
    try:
        plain = OrthancProcess(data, script=None)
        plain.start(timeout=60)
        try:
            started = time.perf_counter()
            made = populate(plain.base, studies, max(studies // 4, 1))
            print(f"    stored {studies:,} studies in {time.perf_counter() - started:.0f} s")
        finally:
            plain.stop()
        gate = OrthancProcess(data, gate={"MfaRequiredRoles": []})
        gate.create_user(ADMIN, ["admin"], ADMIN_PASSWORD)
        gate.create_user(DOCTOR, ["referring_doctor"], DOCTOR_PASSWORD)
        gate.start(timeout=120)
        try:
            admin, doctor = (ADMIN, ADMIN_PASSWORD), (DOCTOR, DOCTOR_PASSWORD)
            step = max(len(made) // granted, 1)
            # By Orthanc id (computed as Orthanc does): granting by StudyInstanceUID makes Orthanc
            # 1.10 search its index once per study, which on a 100k index is what would be measured.
            items = [{"orthanc_id": orthanc_id(study["patient_id"], study["study_uid"])}
                     for study in made[::step][:granted]]
            answer = requests.post(gate.url("/gate/api/grants/bulk"), auth=admin, timeout=600,
                                   json={"user": DOCTOR, "level": "view_only", "items": items})
            if answer.status_code != 201:
                raise BenchError(f"bulk grant failed: {answer.status_code} {answer.text[:300]}")
            body = json.dumps({"Level": "Study", "Query": {}})
            session = requests.Session()

            def find(auth: tuple[str, str]) -> tuple[float, int]:
                times, count = [], 0
                for _ in range(repeat):
                    started = time.perf_counter()
                    result = session.post(gate.url("/tools/find"), data=body, auth=auth, timeout=600)
                    times.append((time.perf_counter() - started) * 1000)
                    result.raise_for_status()
                    count = len(result.json())
                return statistics.median(times), count

            find(doctor)  # warm-up: the doctor's grant set is read once, as on a real server
            doctor_ms, doctor_count = find(doctor)
            admin_ms, admin_count = find(admin)
            if doctor_count != len(items):
                raise BenchError(f"the doctor's find returned {doctor_count} studies, not {len(items)}")
            print(f"    doctor (holds {len(items):,}): {doctor_ms:.1f} ms for {doctor_count:,} studies; "
                  f"admin (unconstrained): {admin_ms:.1f} ms for {admin_count:,}")
            return doctor_ms
        finally:
            gate.stop()
    finally:
        if str(data).startswith("/dev/shm/"):
            shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each throughput measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds (median kept)")
    parser.add_argument("--checks", type=int, default=2000, help="grant checks timed per store size")
    parser.add_argument("--studies", type=int, default=100_000, help="studies in the index for (c)")
    parser.add_argument("--granted", type=int, default=1000, help="studies granted to the doctor in (c)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: short, small")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.checks, args.studies, args.granted = 2.0, 1, 200, 5000, 100
    with tempfile.TemporaryDirectory(prefix="gate-bench-grants-") as tmp:
        ratio, _ = throughput(Path(tmp) / "a", args.seconds, args.rounds)
        print("\n(b) grant check, nothing cached, median of", args.checks)
        check_ratio = grant_checks(Path(tmp), args.checks)
        print(f"\n(c) POST /tools/find Level Study, median of 5, {args.studies:,} studies")
        find_ms = doctor_find(Path(tmp) / "c", args.studies, args.granted, 5)
    print(f"doctor_vs_trivial_filter={ratio:.2f} grant_check_1m_vs_1k={check_ratio:.2f} doctor_find_ms={find_ms:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Ingest: what arrival (the auto-link and its audit) costs a modality, and how soon a doctor can open
a new study, measured against plain Orthanc in the same run.

(a) C-STORE throughput. Plain Orthanc and the Gate side by side; on the Gate the referring doctor
    is registered, so every study links. --instances small CT instances (in studies of --per-study,
    default 10: small studies are the hard case, one arrival per ten instances) are
    pushed with DCMTK's storescu over one association (TCP_NODELAY=1 on both ends), fresh UIDs
    each round, rounds interleaved (medians kept). `ingest_vs_plain` is the Gate's instances per
    second over plain Orthanc's (goal: >= 0.9).
(b) Auto-link latency. --studies one-instance studies are sent one at a time over a pynetdicom
    association; after each C-STORE answer the doctor asks GET /studies/{id} every 5 ms until it is
    allowed. `autolink_p95_ms` is the 95th percentile of that delay (goal: < 1000; p50 printed).

The last line: `ingest_vs_plain=R autolink_p95_ms=N`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402
from pydicom import dcmread  # noqa: E402
from pynetdicom import AE  # noqa: E402
from pynetdicom.sop_class import CTImageStorage  # noqa: E402

from plugin.services.core import orthanc_id  # noqa: E402
from tests.harness import OrthancProcess, storescu  # noqa: E402
from tests.referral_studies import Referral, write_study  # noqa: E402

ADMIN, DOCTOR, PASSWORD = "benchadmin", "benchdoctor", "bench password 123"
DOCTOR_RECORD = {"hpcsa_number": "MP0200001", "title": "Dr", "first_name": "Naledi", "last_name": "Mokoena",
                 "username": DOCTOR}
REFERRING = "MOKOENA^NALEDI^^DR"
PER_STUDY = 10


class BenchError(RuntimeError):
    pass


def studies(folder: Path, instances: int, tag: str, per_study: int = PER_STUDY) -> list[Path]:
    files: list[Path] = []
    for number in range(0, instances, per_study):
        _, paths = write_study(folder, Referral(f"{tag}-{number}", referring=REFERRING),
                               min(per_study, instances - number))
        files += paths
    return files


def push_rate(proc: OrthancProcess, files: list[Path]) -> float:
    started = time.perf_counter()
    pushed = storescu(proc.dicom_port, files)
    elapsed = time.perf_counter() - started
    if pushed.returncode != 0:
        raise BenchError(f"storescu failed: {pushed.stderr[-300:]}")
    return len(files) / elapsed


def throughput(tmp: Path, instances: int, rounds: int, gate: OrthancProcess, per_study: int) -> float:
    plain = OrthancProcess(tmp / "plain", script=None)
    rates: dict[str, list[float]] = {"plain": [], "gate": []}
    try:
        plain.start()
        push_rate(plain, studies(tmp / "warm-plain", PER_STUDY, "WARM"))
        push_rate(gate, studies(tmp / "warm-gate", PER_STUDY, "WARM"))
        for number in range(rounds):
            for name, proc in (("plain", plain), ("gate", gate)):
                files = studies(tmp / f"{name}-{number}", instances, f"R{number}", per_study)
                rates[name].append(push_rate(proc, files))
    finally:
        plain.stop()
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"\n(a) C-STORE of {instances} instances in studies of {per_study}, instances/s, median of {rounds} round(s)")
    for name, value in median.items():
        print(f"    {name:<8}{value:.0f}")
    return median["gate"] / median["plain"]


def autolink(tmp: Path, gate: OrthancProcess, count: int) -> list[float]:
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(CTImageStorage)
    association = ae.associate("127.0.0.1", gate.dicom_port, ae_title="ORTHANC")
    if not association.is_established:
        raise BenchError("no DICOM association with the Gate")
    doctor = requests.Session()
    doctor.auth = (DOCTOR, PASSWORD)
    delays = []
    try:
        for number in range(count):
            study_uid, [path] = write_study(tmp / "latency", Referral(f"LAT-{number}", referring=REFERRING))
            dataset = dcmread(path)
            status = association.send_c_store(dataset)
            stored = time.perf_counter()
            if status.Status != 0:
                raise BenchError(f"C-STORE refused: {status.Status:#x}")
            url = gate.url(f"/studies/{orthanc_id(f'LAT-{number}', study_uid)}")
            while doctor.get(url, timeout=10).status_code != 200:
                if time.perf_counter() - stored > 30:
                    raise BenchError("a study was not linked within 30 s")
                time.sleep(0.005)
            delays.append((time.perf_counter() - stored) * 1000)
    finally:
        association.release()
    return delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500, help="instances pushed per round in (a)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds in (a) (median kept)")
    parser.add_argument("--per-study", type=int, default=PER_STUDY, help="instances per study in (a)")
    parser.add_argument("--studies", type=int, default=100, help="studies timed in (b)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: short, small")
    args = parser.parse_args()
    if args.quick:
        args.instances, args.rounds, args.studies = 100, 1, 20
    with tempfile.TemporaryDirectory(prefix="gate-bench-ingest-") as tmp:
        gate = OrthancProcess(Path(tmp) / "gate")
        outputs = gate.gatectl_many([
            (["create-user", ADMIN, "--role", "admin", "--password-stdin", "--no-password-change"], PASSWORD + "\n"),
            (["create-user", DOCTOR, "--role", "referring_doctor", "--password-stdin", "--no-password-change"],
             PASSWORD + "\n"),
            (["create-api-key", "bench", "--user", ADMIN], None)])
        key = outputs[2].strip().splitlines()[-1]
        try:
            gate.start()
            registered = requests.post(gate.url("/gate/api/doctors"), json=DOCTOR_RECORD, timeout=30,
                                       headers={"Authorization": f"Bearer {key}"})
            if registered.status_code != 201:
                raise BenchError(f"could not register the doctor: {registered.text[:200]}")
            ratio = throughput(Path(tmp), args.instances, args.rounds, gate, args.per_study)
            delays = autolink(Path(tmp), gate, args.studies)
        finally:
            gate.stop()
    p50 = statistics.median(delays)
    p95 = statistics.quantiles(delays, n=20)[18] if len(delays) >= 2 else delays[0]
    print(f"\n(b) first instance stored to grant usable, {len(delays)} studies: p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
          f"max {max(delays):.0f} ms")
    print(f"ingest_vs_plain={ratio:.2f} autolink_p95_ms={p95:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

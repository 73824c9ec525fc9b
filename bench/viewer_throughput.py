"""Viewer throughput on real-size images: what a doctor's viewer costs through the Gate, against
plain Orthanc and a trivial Python filter, measured in one run.

Data (tests/ct_series.py): one CT study of 200 slices of 512x512 16-bit pixels (about 0.5 MB each,
100 MB) and a small study of another patient, loaded into three Orthanc servers started side by
side: plain Orthanc (no Python plugin), Orthanc with a Python filter that allows everything, and
Orthanc with the Gate, where a doctor signed in with POST /gate/login holds a `download` grant on
the big study. Every server gets the doctor's session cookie (the references ignore it).

Fetched the way viewers fetch, by --threads client threads at once, each phase timed:
  qido      GET /dicom-web/studies?StudyInstanceUID=X (a study opened by its link; the worklist's
            search without a study key is not timed here)
  metadata  GET /dicom-web/studies/X/series/Y/metadata (the whole series, 200 instances; asked once
            alone before any timing, since DICOMweb 1.15+ caches it and concurrent first asks race)
  frames    GET .../instances/I/frames/1, Accept: multipart/related; type=application/octet-stream;
            transfer-syntax=*, cycling through every slice, for --frame-seconds, by wrk (a C client:
            Python clients cannot take more than ~50 frames/s, which is what they then measure)
  zip       GET /studies/{id}/archive, the whole study as one ZIP, --zip-clients at once
Phases are interleaved over servers in --rounds rounds (the servers' order rotating from round to
round) and the median kept, so a drift of the machine's speed hits every server alike. Every answer
must be 200: a bench of refusals means nothing. The last line gives the Gate's throughput divided
by plain Orthanc's (and by the trivial filter's) for the same phase, and the doctor's median QIDO
latency through the Gate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pydicom  # noqa: E402
import requests  # noqa: E402

from bench.wrk import BenchError, requests_per_second  # noqa: E402
from tests.ct_series import Patient, ct_study  # noqa: E402
from tests.harness import OrthancProcess, storescu  # noqa: E402

TRIVIAL_FILTER = """import orthanc


def f(uri, **request):
    return True


orthanc.RegisterIncomingHttpRequestFilter(f)
"""
ADMIN, ADMIN_PASSWORD = "benchadmin", "bench password 123"
DOCTOR, DOCTOR_PASSWORD = "benchdoctor", "bench doctor password 123"
SERVERS = ("plain", "trivial filter", "gate")
PHASES = ("qido", "metadata", "frames", "zip")
FRAME_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"
QIDO_PER_ROUND = 40
# wrk cycles through the frame paths, one after the other in each of its threads.
WRK_PATHS = """paths = {%s}
i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


class Study:
    def __init__(self, files: list[Path]) -> None:
        first = pydicom.dcmread(files[0], stop_before_pixels=True)
        self.uid, self.series_uid = first.StudyInstanceUID, first.SeriesInstanceUID
        self.files = files
        self.sop_uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]


def start_servers(tmp: Path) -> tuple[dict[str, OrthancProcess], str]:
    """The three servers, and the Gate admin's API key."""
    (tmp / "trivial.py").write_text(TRIVIAL_FILTER)
    servers = {"plain": OrthancProcess(tmp / "plain", script=None),
               "trivial filter": OrthancProcess(tmp / "trivial", script=str(tmp / "trivial.py")),
               "gate": OrthancProcess(tmp / "gate", gate={"MfaRequiredRoles": []})}
    gate = servers["gate"]
    gate.create_user(ADMIN, ["admin"], ADMIN_PASSWORD)
    gate.create_user(DOCTOR, ["referring_doctor"], DOCTOR_PASSWORD)
    key = gate.create_api_key("bench", ADMIN)
    for proc in servers.values():
        proc.start()
    return servers, key


def load(proc: OrthancProcess, files: list[Path]) -> None:
    """Over DICOM (C-STORE), as a modality sends (and quickly: one association per server)."""
    pushed = storescu(proc.dicom_port, files)
    if pushed.returncode != 0:
        raise BenchError(f"storescu into {proc.workdir.name}: {pushed.stderr[-500:]}")


def doctor_cookie(gate: OrthancProcess, admin_key: str, study_uid: str) -> str:
    granted = requests.post(gate.url("/gate/api/grants"), headers={"Authorization": f"Bearer {admin_key}"},
                            json={"user": DOCTOR, "study_uid": study_uid, "level": "download"}, timeout=30)
    if granted.status_code != 201:
        raise BenchError(f"grant: {granted.status_code} {granted.text}")
    signed = requests.post(gate.url("/gate/login"), json={"username": DOCTOR, "password": DOCTOR_PASSWORD},
                           timeout=30)
    signed.raise_for_status()
    return f"gate_session={signed.cookies['gate_session']}"


class Client:
    """--threads threads, each with its own connection, sending the doctor's cookie."""

    def __init__(self, threads: int, cookie: str) -> None:
        self.threads, self.cookie = threads, cookie
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["Cookie"] = self.cookie
        return session

    def fetch(self, url: str) -> tuple[int, float]:
        """Bytes received and seconds taken for one GET that must answer 200."""
        started = time.perf_counter()
        answer = self._session().get(url, timeout=300)
        if answer.status_code != 200:
            raise BenchError(f"{url}: {answer.status_code} (a bench of refusals means nothing)")
        return len(answer.content), time.perf_counter() - started

    def run(self, urls: list[str]) -> tuple[float, int, list[float]]:
        """Wall-clock seconds for all `urls`, bytes received, and each request's latency."""
        started = time.perf_counter()
        with ThreadPoolExecutor(self.threads) as pool:
            results = list(pool.map(self.fetch, urls))
        return time.perf_counter() - started, sum(size for size, _ in results), [s for _, s in results]


def frames_per_second(proc: OrthancProcess, script: Path, cookie: str, threads: int, seconds: float) -> float:
    """Frames/s wrk fetched with `threads` connections; fails if any answer was not 2xx."""
    return requests_per_second(["-t2", f"-c{threads}", f"-d{seconds:g}s", "-s", str(script), "-H", f"Cookie: {cookie}",
                                "-H", f"Accept: {FRAME_ACCEPT}", proc.base], seconds, "frames")


def frame_script(tmp: Path, study: Study) -> Path:
    base = f"/dicom-web/studies/{study.uid}/series/{study.series_uid}/instances"
    script = tmp / "frames.lua"
    script.write_text(WRK_PATHS % ", ".join(f'"{base}/{sop}/frames/1"' for sop in study.sop_uids))
    return script


def phase_urls(proc: OrthancProcess, study: Study, study_id: str, threads: int, zip_clients: int) -> dict:
    base = proc.url(f"/dicom-web/studies/{study.uid}/series/{study.series_uid}")
    return {
        "qido": [proc.url(f"/dicom-web/studies?StudyInstanceUID={study.uid}")] * QIDO_PER_ROUND,
        "metadata": [f"{base}/metadata"] * threads,
        "zip": [proc.url(f"/studies/{study_id}/archive")] * zip_clients,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4, help="client threads fetching at once")
    parser.add_argument("--zip-clients", type=int, default=1, help="study ZIPs downloaded at once")
    parser.add_argument("--frame-seconds", type=float, default=3.0, help="length of each frames measurement")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds; the median is kept")
    parser.add_argument("--quick", action="store_true", help="40 slices, 2 rounds (a smoke run)")
    args = parser.parse_args()
    slices, rounds = (40, 2) if args.quick else (args.slices, args.rounds)
    rate: dict[tuple[str, str], list[float]] = {}
    qido_ms: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="gate-viewer-bench-") as tmp_name:
        tmp = Path(tmp_name)
        _uid, big = ct_study(tmp / "big", Patient("BENCH-1", "Bench^Big"), slices, description="CT CHEST")
        _uid, small = ct_study(tmp / "small", Patient("BENCH-2", "Bench^Other"), 3, description="CT HEAD")
        study = Study(big)
        size_mb = sum(f.stat().st_size for f in big) / 1e6
        servers, admin_key = start_servers(tmp)
        try:
            study_ids = {}
            for name, proc in servers.items():
                load(proc, big + small)
                found = requests.post(proc.url("/tools/lookup"), data=study.uid, timeout=30,
                                      headers={"Authorization": f"Bearer {admin_key}"}).json()
                study_ids[name] = found[0]["ID"]
            cookie = doctor_cookie(servers["gate"], admin_key, study.uid)
            client = Client(args.threads, cookie)
            script = frame_script(tmp, study)
            urls = {name: phase_urls(servers[name], study, study_ids[name], args.threads, args.zip_clients)
                    for name in SERVERS}
            for name in SERVERS:  # warm-up: Orthanc's caches, the Gate's session and grant lookups
                # One series metadata request alone first: DICOMweb 1.15+ stores the series' metadata
                # as an attachment the first time it is asked, and concurrent first requests race
                # to write it (plain Orthanc 1.12.7 with DICOMweb 1.20 answers some of them 409).
                client.fetch(urls[name]["metadata"][0])
                for phase in ("qido", "metadata"):
                    client.run(urls[name][phase][:args.threads])
                frames_per_second(servers[name], script, cookie, args.threads, 1)
            for round_index in range(rounds):
                order = SERVERS[round_index % 3:] + SERVERS[:round_index % 3]
                for phase in PHASES:
                    for name in order:
                        if phase == "frames":
                            rate.setdefault((name, phase), []).append(
                                frames_per_second(servers[name], script, cookie, args.threads, args.frame_seconds))
                            continue
                        seconds, size, latencies = client.run(urls[name][phase])
                        rate.setdefault((name, phase), []).append(size / seconds / 1e6)
                        if phase == "qido":
                            qido_ms.setdefault(name, []).append(statistics.median(latencies) * 1000)
        finally:
            for proc in servers.values():
                proc.stop()
    median = {key: statistics.median(values) for key, values in rate.items()}
    print(f"\n{slices} slices ({size_mb:.0f} MB), {args.threads} client threads, median of {rounds} round(s); "
          "MB/s received (qido: median latency in ms; frames: frames/s)")
    print(f"{'server':<16}" + "".join(f"{phase:>12}" for phase in PHASES))
    for name in SERVERS:
        cells = [f"{statistics.median(qido_ms[name]):>10.1f}ms"]
        cells += [f"{median[(name, phase)]:>12.1f}" for phase in PHASES[1:]]
        print(f"{name:<16}" + "".join(cells))

    def ratio(phase: str, reference: str) -> str:
        return f"{median[('gate', phase)] / median[(reference, phase)]:.2f}"

    print(f"viewer_frames_vs_plain={ratio('frames', 'plain')} study_zip_vs_plain={ratio('zip', 'plain')} "
          f"doctor_qido_ms={statistics.median(qido_ms['gate']):.1f} "
          f"metadata_vs_plain={ratio('metadata', 'plain')} "
          f"frames_vs_trivial_filter={ratio('frames', 'trivial filter')} "
          f"zip_vs_trivial_filter={ratio('zip', 'trivial filter')} "
          f"plain_qido_ms={statistics.median(qido_ms['plain']):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

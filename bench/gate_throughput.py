"""Gate throughput: requests/s Orthanc serves with the Gate, against two references, in one run.

Three Orthanc servers run side by side (an idle server costs nothing) and each gets one small DICOM
instance: plain Orthanc (no Python plugin), Orthanc with a trivial Python filter that allows
everything, and Orthanc with the Gate. wrk (16 connections, 2 threads) fetches two URLs:

  GET /instances/{id}/file   the raw DICOM file (a small-file download)
  GET /instances/{id}        the instance's JSON description

Gate cases: an admin authenticated by API key (`Authorization: Bearer`) and by session cookie.
The references get the very same header (they ignore it), so every case sends the same bytes.
Measurements are interleaved in --rounds rounds (plain, trivial, gate for one case and URL, then
the next...) and the median of each is kept, so a drift of the machine's speed during the run hits
every case alike; absolute figures still drift by up to 40% between runs.

The last line, `gate_vs_trivial_filter=R gate_vs_plain=R`, gives for each reference the WORST of
the four gate figures (API key / cookie x two URLs) divided by that reference's figure for the same
case. gate_vs_trivial_filter is the cost of the Gate's own work (1.0 means free), since any Python
filter already serialises requests behind the GIL; gate_vs_plain includes the price of having a
Python filter at all. Every measurement must answer 2xx only: the script fails if wrk saw another.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from bench.wrk import measurement_options, requests_per_second  # noqa: E402
from tests.harness import OrthancProcess  # noqa: E402

SAMPLE = REPO / "tests" / "dicom-samples" / "patient1-instance1.dcm"
TRIVIAL_FILTER = """import orthanc


def f(uri, **request):
    return True


orthanc.RegisterIncomingHttpRequestFilter(f)
"""
ADMIN, PASSWORD = "benchadmin", "bench password 123"
URLS = {"file": "/instances/{id}/file", "json": "/instances/{id}"}
SERVERS = ("plain", "trivial filter", "gate")


def wrk(url: str, seconds: float, header: str) -> float:
    """Requests/s of one wrk run; fails if any answer was not 2xx/3xx."""
    return requests_per_second(["-t2", "-c16", f"-d{seconds:g}s", "-H", header, url], seconds, url)


def upload(proc: OrthancProcess, header: str) -> str:
    name, _, value = header.partition(": ")
    answer = requests.post(proc.url("/instances"), data=SAMPLE.read_bytes(), headers={name: value}, timeout=30)
    answer.raise_for_status()
    return answer.json()["ID"]


def start_servers(tmp: Path) -> tuple[dict[str, OrthancProcess], dict[str, str]]:
    """The three servers, and the two gate credentials as header lines."""
    (tmp / "trivial.py").write_text(TRIVIAL_FILTER)
    servers = {"plain": OrthancProcess(tmp / "plain", script=None),
               "trivial filter": OrthancProcess(tmp / "trivial", script=str(tmp / "trivial.py")),
               # The admin's session skips MFA enrolment here; a session that passed MFA takes the
               # same path per request.
               "gate": OrthancProcess(tmp / "gate", gate={"MfaRequiredRoles": []})}
    gate = servers["gate"]
    gate.create_user(ADMIN, ["admin"], PASSWORD)
    key = gate.create_api_key("bench", ADMIN)
    for proc in servers.values():
        proc.start()
    signed = requests.post(gate.url("/gate/login"), json={"username": ADMIN, "password": PASSWORD}, timeout=30)
    signed.raise_for_status()
    return servers, {"api key": f"Authorization: Bearer {key}",
                     "cookie": f"Cookie: gate_session={signed.cookies['gate_session']}"}


def main() -> int:
    seconds, rounds = measurement_options(__doc__.splitlines()[0])
    samples: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp:
        servers, credentials = start_servers(Path(tmp))
        try:
            urls = {}
            for name, proc in servers.items():
                instance = upload(proc, credentials["api key"])
                urls[name] = {kind: proc.url(path.format(id=instance)) for kind, path in URLS.items()}
                for kind in URLS:
                    wrk(urls[name][kind], 1, credentials["api key"])  # warm-up
            for _ in range(rounds):
                for case, header in credentials.items():
                    for kind in URLS:
                        for name in SERVERS:
                            rate = wrk(urls[name][kind], seconds, header)
                            samples.setdefault((name, case, kind), []).append(rate)
        finally:
            for proc in servers.values():
                proc.stop()
    median = {key: statistics.median(values) for key, values in samples.items()}
    print(f"\nrequests/s, median of {rounds} round(s) of {seconds:g} s (wrk: 16 connections, 2 threads)")
    print(f"{'server':<16}{'credentials':<13}{'file /instances/ID/file':>26}{'json /instances/ID':>22}")
    for name in SERVERS:
        for case in credentials:
            print(f"{name:<16}{case:<13}{median[(name, case, 'file')]:>26.0f}{median[(name, case, 'json')]:>22.0f}")
    ratios = {ref: min(median[("gate", case, kind)] / median[(ref, case, kind)]
                       for case in credentials for kind in URLS) for ref in ("trivial filter", "plain")}
    print(f"gate_vs_trivial_filter={ratios['trivial filter']:.2f} gate_vs_plain={ratios['plain']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

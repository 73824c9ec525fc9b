"""Gate throughput: how many requests/s Orthanc serves with the Gate, against two references.

Three Orthanc servers are started one after another (never together, so they do not share the two
cores) and each gets one small DICOM instance. wrk (16 connections, 2 threads, a 1 s warm-up, then
--seconds of measurement) then fetches two URLs from each:

  GET /instances/{id}/file   the raw DICOM file (a small-file download)
  GET /instances/{id}        the instance's JSON description

Cases: plain Orthanc (no Python plugin); Orthanc with a trivial Python filter that allows
everything; the Gate authenticated by an API key; the Gate authenticated by a session cookie.

Reading the last line, `gate_vs_trivial_filter=R gate_vs_plain=R`: each R is the WORST of the four
gate figures (API key / cookie x two URLs) divided by the reference figure for the same URL.
gate_vs_trivial_filter is the cost of the Gate's own work, since any Python filter already
serialises requests behind the GIL (1.0 means free). gate_vs_plain also includes the price of having
a Python filter at all. Absolute figures drift by up to 40% between runs; compare ratios of one run.
Every case must answer 2xx only: the script fails if wrk saw any other status.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from http.cookies import SimpleCookie
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from tests.harness import OrthancProcess  # noqa: E402

SAMPLE = REPO / "tests" / "dicom-samples" / "patient1-instance1.dcm"
WRK = "/usr/bin/wrk"
TRIVIAL_FILTER = """import orthanc


def f(uri, **request):
    return True


orthanc.RegisterIncomingHttpRequestFilter(f)
"""
ADMIN, PASSWORD = "benchadmin", "bench password 123"
CUT_OFF = "has not sent the proper number of bytes in its body"
URLS = {"file": "/instances/{id}/file", "json": "/instances/{id}"}


class BenchError(RuntimeError):
    pass


def wrk(url: str, seconds: float, headers: dict[str, str]) -> tuple[float, int, str]:
    """Run wrk once; return (requests/s, non-2xx/3xx count, socket errors line or '')."""
    cmd = [WRK, "-t2", "-c16", f"-d{seconds:g}s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise BenchError(f"wrk printed no Requests/sec:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return float(rate.group(1)), int(bad.group(1)) if bad else 0, errors.group(0) if errors else ""


def upload(proc: OrthancProcess, headers: dict[str, str]) -> str:
    answer = requests.post(proc.url("/instances"), data=SAMPLE.read_bytes(), timeout=30,
                           headers={**headers, "Content-Type": "application/dicom"})
    if answer.status_code != 200:
        raise BenchError(f"upload answered {answer.status_code}: {answer.text[:300]}\n{proc.log_tail()}")
    return answer.json()["ID"]


def login(proc: OrthancProcess) -> str:
    answer = requests.post(proc.url("/gate/login"), json={"username": ADMIN, "password": PASSWORD}, timeout=30)
    if answer.status_code != 200:
        raise BenchError(f"login answered {answer.status_code}: {answer.text[:300]}\n{proc.log_tail()}")
    morsel = SimpleCookie(answer.headers.get("Set-Cookie", "")).get("gate_session")
    if morsel is None or not morsel.value:
        raise BenchError(f"login set no gate_session cookie: {answer.headers}")
    return morsel.value


def measure(proc: OrthancProcess, case: str, instance: str, headers: dict[str, str], seconds: float,
            results: dict[str, dict[str, float]]) -> None:
    for label, template in URLS.items():
        url = proc.url(template.format(id=instance))
        check = requests.get(url, headers=headers, timeout=30)
        if check.status_code != 200:
            raise BenchError(f"{case}: GET {template} answered {check.status_code} before the run\n"
                             f"{proc.log_tail()}")
        wrk(url, 1, headers)  # warm-up, not recorded
        rate, bad, errors = wrk(url, seconds, headers)
        if bad:
            raise BenchError(f"{case}: {bad} non-2xx/3xx answers to GET {template} in {seconds:g} s "
                             f"({rate:.0f} req/s measured, meaningless)\n--- Orthanc log tail ---\n"
                             f"{proc.log_tail()}")
        if errors:
            print(f"  note: {case} {label}: {errors}", flush=True)
        results.setdefault(case, {})[label] = rate
        print(f"  {case:<22} {label:<5} {rate:>10.0f} req/s", flush=True)


def run_server(name: str, make, prepare, seconds: float, results: dict) -> None:  # noqa: ANN001
    """Start one server in its own temporary folder, measure it, and always stop it."""
    with tempfile.TemporaryDirectory(prefix=f"gate-bench-{name}-") as tmp:
        proc = make(Path(tmp))
        try:
            proc.start()
            print(f"{name}: Orthanc pid {proc.pid} on port {proc.http_port}", flush=True)
            prepare(proc, seconds, results)
        finally:
            proc.stop()


def bench_plain(proc: OrthancProcess, seconds: float, results: dict) -> None:
    measure(proc, "plain", upload(proc, {}), {}, seconds, results)


def bench_trivial(proc: OrthancProcess, seconds: float, results: dict) -> None:
    measure(proc, "trivial filter", upload(proc, {}), {}, seconds, results)


def bench_gate(proc: OrthancProcess, seconds: float, results: dict) -> None:
    proc.create_user(ADMIN, ["admin"], PASSWORD)
    key = {"Authorization": f"Bearer {proc.create_api_key('bench', ADMIN)}"}
    instance = upload(proc, key)
    cookie = {"Cookie": f"gate_session={login(proc)}"}
    measure(proc, "gate api key", instance, key, seconds, results)
    measure(proc, "gate cookie", instance, cookie, seconds, results)
    errors = [line for line in proc.log_text().splitlines() if line.startswith("E")]
    # wrk drops its open connections when a run ends; Orthanc logs that, with or without the Gate.
    cut = [line for line in errors if CUT_OFF in line]
    if cut:
        print(f"  note: {len(cut)} x '{CUT_OFF}' in the log (wrk cutting answers off at the end of a run)")
    if len(cut) < len(errors):
        print("  note: errors in the Gate server's log:\n  " + "\n  ".join(
            line for line in errors[-10:] if CUT_OFF not in line), flush=True)


def trivial_server(tmp: Path) -> OrthancProcess:
    script = tmp / "trivial_filter.py"
    script.write_text(TRIVIAL_FILTER)
    return OrthancProcess(tmp / "orthanc", script=str(script))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per case (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 s per case")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    results: dict[str, dict[str, float]] = {}
    try:
        run_server("plain", lambda tmp: OrthancProcess(tmp, script=None), bench_plain, seconds, results)
        run_server("trivial filter", trivial_server, bench_trivial, seconds, results)
        run_server("gate", lambda tmp: OrthancProcess(tmp), bench_gate, seconds, results)
    except (BenchError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"BENCH FAILED: {exc}", file=sys.stderr)
        return 1

    print(f"\nrequests/s (wrk: 16 connections, 2 threads, {seconds:g} s per case)")
    print(f"{'case':<22}" + "".join(f"{label + ' ' + URLS[label].replace('{id}', 'ID'):>30}" for label in URLS))
    for case, rates in results.items():
        print(f"{case:<22}" + "".join(f"{rates[label]:>30.0f}" for label in URLS))
    gates = ("gate api key", "gate cookie")
    ratios = {ref: min(results[g][u] / results[ref][u] for g in gates for u in URLS)
              for ref in ("trivial filter", "plain")}
    print(f"gate_vs_trivial_filter={ratios['trivial filter']:.2f} gate_vs_plain={ratios['plain']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

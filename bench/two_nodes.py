"""Two Orthanc nodes on one PostgreSQL against one node: what a doctor's downloads get from each.

One PostgreSQL server (tests/postgres_server.py) holds two set-ups side by side, each with its own
Orthanc index and Gate store: a single node, and a pair of nodes sharing their index, storage
folder and store (as docker-compose.yml runs them; tests/integration/test_postgres_nodes.py checks
that they agree). Each holds the same small instance, and a referring doctor holds a `download`
grant on its patient. wrk fetches GET /instances/{id}/file with the doctor's session cookie (one
sign-in, on node A, used on both nodes of the pair) for --seconds, interleaved over --rounds rounds
(medians kept):
- `one`: 16 connections to the single node;
- `node_a`, `node_b`: 16 connections to one node of the pair, the other idle;
- `pair`: 8 connections to each node of the pair at once, the two rates added.

On this 2-CPU machine the two nodes, PostgreSQL and wrk share the same cores, so `pair_vs_one`
says what a second node costs or gives here, not on two machines: the figure to watch is that
node_a and node_b each serve like one node (the shared store costs nothing per request).

The last line: `node_a_vs_one=R node_b_vs_one=R pair_vs_one=R`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from bench.gate_throughput import SAMPLE  # noqa: E402
from bench.wrk import measurement_options, requests_per_second  # noqa: E402
from tests.harness import OrthancProcess, shared_keys  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402

ADMIN, ADMIN_PASSWORD = "benchadmin", "bench password 123"
DOCTOR, DOCTOR_PASSWORD = "benchdoctor", "doctor password 123"
SHAPES = ("one", "node_a", "node_b", "pair")


def _prepare(first: OrthancProcess) -> tuple[str, str]:
    """The instance, the doctor's download grant on its patient; the instance id and a session cookie."""
    admin = (ADMIN, ADMIN_PASSWORD)
    stored = requests.post(first.url("/instances"), data=SAMPLE.read_bytes(), auth=admin, timeout=30)
    stored.raise_for_status()
    instance = stored.json()["ID"]
    patient = requests.get(first.url(f"/instances/{instance}/simplified-tags"), auth=admin, timeout=30).json()
    granted = requests.post(first.url("/gate/api/grants"), auth=admin, timeout=30,
                            json={"user": DOCTOR, "patient_id": patient["PatientID"], "level": "download"})
    granted.raise_for_status()
    signed = requests.post(first.url("/gate/login"), json={"username": DOCTOR, "password": DOCTOR_PASSWORD},
                           timeout=30)
    signed.raise_for_status()
    return instance, f"Cookie: gate_session={signed.cookies['gate_session']}"


def _rate(url: str, header: str, seconds: float, connections: int) -> float:
    return requests_per_second(["-t1" if connections < 16 else "-t2", f"-c{connections}", f"-d{seconds:g}s",
                                "-H", header, url], seconds, url)


def _together(jobs: list[tuple[str, str]], seconds: float) -> float:
    """The added rates of wrk runs on several nodes at once, 8 connections each."""
    rates: list[float] = []
    errors: list[BaseException] = []

    def run(url: str, header: str) -> None:
        try:
            rates.append(_rate(url, header, seconds, 8))
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(rates)


def main() -> int:
    seconds, rounds = measurement_options(__doc__.splitlines()[0])
    postgres = PostgresServer().start()
    nodes: list[OrthancProcess] = []
    try:
        for database in ("orthanc_one", "gate_one", "orthanc_pair", "gate_pair"):
            postgres.create_database(database)
        with tempfile.TemporaryDirectory(prefix="gate-bench-nodes-") as tmp:
            root = Path(tmp)
            gate = {"MfaRequiredRoles": []}
            one = postgres.node(root / "one", "node", root / "one",
                                "orthanc_one", {**gate, "DatabaseUrl": postgres.url("gate_one"),
                                                **shared_keys(root / "one" / "keys")})
            pair_gate = {**gate, "DatabaseUrl": postgres.url("gate_pair"), **shared_keys(root / "pair" / "keys")}
            a, b = (postgres.node(root / "pair", name, root / "pair", "orthanc_pair", pair_gate)
                    for name in ("node-a", "node-b"))
            nodes = [one, a, b]
            for first in (one, a):
                first.create_user(ADMIN, ["admin"], ADMIN_PASSWORD)
                first.create_user(DOCTOR, ["referring_doctor"], DOCTOR_PASSWORD)
            for node in nodes:
                node.start(timeout=60)
            one_instance, one_cookie = _prepare(one)
            pair_instance, pair_cookie = _prepare(a)
            path = "/instances/{}/file"
            for node in (a, b):  # the pair's session and grant answer on both nodes
                answer = requests.get(node.url(path.format(pair_instance)), timeout=30,
                                      headers={"Cookie": pair_cookie.split(": ", 1)[1]})
                assert answer.status_code == 200, (node.url(""), answer.status_code)
            samples: dict[str, list[float]] = {shape: [] for shape in SHAPES}
            for round_number in range(rounds):
                samples["one"].append(_rate(one.url(path.format(one_instance)), one_cookie, seconds, 16))
                samples["node_a"].append(_rate(a.url(path.format(pair_instance)), pair_cookie, seconds, 16))
                samples["node_b"].append(_rate(b.url(path.format(pair_instance)), pair_cookie, seconds, 16))
                samples["pair"].append(_together([(a.url(path.format(pair_instance)), pair_cookie),
                                                  (b.url(path.format(pair_instance)), pair_cookie)], seconds))
                print(f"round {round_number + 1}: " + ", ".join(f"{s} {samples[s][-1]:.0f}/s" for s in SHAPES),
                      flush=True)
    finally:
        for node in nodes:
            node.stop()
        postgres.remove()
    median = {shape: statistics.median(values) for shape, values in samples.items()}
    for shape in SHAPES:
        print(f"doctor downloads, {shape}: {median[shape]:.0f}/s")
    print(f"node_a_vs_one={median['node_a'] / median['one']:.2f} node_b_vs_one={median['node_b'] / median['one']:.2f} "
          f"pair_vs_one={median['pair'] / median['one']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

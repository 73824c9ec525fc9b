"""wrk, the HTTP load generator the benches drive (Debian's package), and what they read off it."""

from __future__ import annotations

import argparse
import re
import subprocess

WRK = "/usr/bin/wrk"


class BenchError(RuntimeError):
    pass


def requests_per_second(arguments: list[str], seconds: float, what: str) -> float:
    """Requests/s of one wrk run (`arguments` after `wrk`); fails if any answer was not 2xx/3xx."""
    out = subprocess.run([WRK, *arguments], capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise BenchError(f"wrk printed no rate for {what}:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if bad:
        raise BenchError(f"{what}: {bad.group(1)} answers were not 2xx (a bench of refusals means nothing)")
    return float(rate.group(1))


def measurement_options(description: str) -> tuple[float, int]:
    """The command line a throughput bench takes: (seconds per measurement, rounds)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is kept")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s (a smoke run)")
    args = parser.parse_args()
    return (2.0, 1) if args.quick else (args.seconds, args.rounds)

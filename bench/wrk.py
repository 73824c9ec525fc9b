"""wrk, the HTTP load generator the benches drive (Debian's package), and what they read off it."""

from __future__ import annotations

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

"""The dashboard's plots from the server's size samples (pure): how many instances arrived in each
hour (or day), and how much storage was in use at its end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    taken_at: float
    instances: int
    disk_bytes: int


@dataclass(frozen=True)
class Series:
    """One plot: a value per bucket (None where nothing is known yet), oldest first."""

    starts: tuple[float, ...]
    values: tuple[float | None, ...]

    @property
    def highest(self) -> float:
        return max((v for v in self.values if v is not None), default=0.0)


def bucket_starts(end: float, width: float, count: int) -> tuple[float, ...]:
    """`count` buckets of `width` seconds, the last one ending at `end`."""
    return tuple(end - width * (count - i) for i in range(count))


def arrivals(samples: Sequence[Sample], starts: Sequence[float], width: float) -> Series:
    """Instances that arrived per bucket: the growth between consecutive samples, counted in the
    bucket of the later one (a deletion is no arrival: it counts 0, not less). A bucket no sample
    pair reaches is unknown (None), so a fresh server plots nothing rather than a false zero."""
    values: list[float | None] = [None] * len(starts)
    ordered = sorted(samples, key=lambda s: s.taken_at)
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        index = _bucket(later.taken_at, starts, width)
        if index is not None:
            values[index] = (values[index] or 0) + max(0, later.instances - earlier.instances)
    return Series(tuple(starts), tuple(values))


def storage(samples: Sequence[Sample], starts: Sequence[float], width: float) -> Series:
    """Disk in use at the end of each bucket: the last sample up to then (unknown before the first)."""
    ordered = sorted(samples, key=lambda s: s.taken_at)
    values: list[float | None] = []
    for start in starts:
        seen = [s.disk_bytes for s in ordered if s.taken_at < start + width]
        values.append(float(seen[-1]) if seen else None)
    return Series(tuple(starts), tuple(values))


def _bucket(moment: float, starts: Sequence[float], width: float) -> int | None:
    if not starts or moment < starts[0] or moment >= starts[-1] + width:
        return None
    return min(int((moment - starts[0]) // width), len(starts) - 1)

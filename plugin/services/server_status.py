"""The admin dashboard's figures: Orthanc's version and size, free disk, how long the Gate has
been running, arrivals and storage over 24 hours and 30 days (from samples this service takes
every few minutes), and what needs an admin (denials, undelivered messages, review items)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from cryptography.fernet import MultiFernet

from plugin.audit.record import iso_utc
from plugin.config import GateConfig
from plugin.policies import growth
from plugin.services import audit_reports, outbox
from plugin.services.core import Core, CoreError
from plugin.store import audit as audit_rows
from plugin.store import samples as sample_rows
from plugin.store.db import Store
from plugin.store.models import ServerSample

SAMPLE_SECONDS = 600.0
KEEP_SAMPLES_SECONDS = 400 * 86400.0
HOUR, DAY = 3600.0, 86400.0
RECENT_DENIALS = 10


class ServerStatus:
    def __init__(self, store: Store, core: Core, config: GateConfig, clock: Callable[[], float],
                 cipher: MultiFernet) -> None:
        self._store = store
        self._core = core
        self._config = config
        self._clock = clock
        self._cipher = cipher
        self.started_at = clock()

    def sample(self) -> None:
        """Record the server's size now (run every SAMPLE_SECONDS by a background thread)."""
        statistics = self._core.get("/statistics")
        now = self._clock()
        with self._store.transaction() as db:
            sample_rows.add_sample(db, ServerSample(taken_at=now, instances=int(statistics["CountInstances"]),
                                                    studies=int(statistics["CountStudies"]),
                                                    disk_bytes=_bytes(statistics)))
            sample_rows.prune(db, now - KEEP_SAMPLES_SECONDS)

    def dashboard(self, review_open: int) -> dict[str, Any]:
        now = self._clock()
        system, statistics = self._core_state()
        with self._store.read() as db:
            taken = [growth.Sample(s.taken_at, s.instances, s.disk_bytes)
                     for s in sample_rows.samples_since(db, now - 30 * DAY - DAY)]
            baseline = sample_rows.last_before(db, now - 30 * DAY - DAY)
            denials = audit_rows.search_events(db, audit_rows.event_filter(outcome="deny"), RECENT_DENIALS)
            head = audit_rows.head(db)
            checkpoints = audit_rows.checkpoints(db)
        if baseline is not None:
            taken.insert(0, growth.Sample(baseline.taken_at, baseline.instances, baseline.disk_bytes))
        hours, days = growth.bucket_starts(now, HOUR, 24), growth.bucket_starts(now, DAY, 30)
        return {
            "orthanc": {"version": system.get("Version"), "name": system.get("Name"), "aet": system.get("DicomAet"),
                        "reachable": bool(system)},
            "gate_running_since": iso_utc(self.started_at), "uptime_seconds": round(now - self.started_at),
            "counts": {name: statistics.get(f"Count{name.title()}") for name in
                       ("patients", "studies", "series", "instances")},
            "storage": {"used_bytes": _bytes(statistics) if statistics else None, **self._disk()},
            "plots": {"arrivals_24h": _series(growth.arrivals(taken, hours, HOUR)),
                      "arrivals_30d": _series(growth.arrivals(taken, days, DAY)),
                      "storage_24h": _series(growth.storage(taken, hours, HOUR)),
                      "storage_30d": _series(growth.storage(taken, days, DAY)),
                      "sampled_since": iso_utc(taken[0].taken_at) if taken else None},
            "recent_denials": [audit_reports.event_view(row) for row in denials],
            "outbox_failures": outbox.list_outbox(self._store, self._cipher, "dead", None, "20"),
            "review_open": review_open,
            "audit": {"records": head["last_id"],
                      "last_checkpoint": checkpoints[-1]["created_at"] if checkpoints else None,
                      "last_checkpoint_row": checkpoints[-1]["audit_id"] if checkpoints else None},
        }

    def _core_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            return self._core.get("/system"), self._core.get("/statistics")
        except CoreError:
            return {}, {}

    def _disk(self) -> dict[str, Any]:
        folder = self._config.storage_directory
        if folder is None:
            return {"free_bytes": None, "total_bytes": None}
        try:
            usage = shutil.disk_usage(folder)
        except OSError:
            return {"free_bytes": None, "total_bytes": None}
        return {"free_bytes": usage.free, "total_bytes": usage.total}


def _bytes(statistics: dict[str, Any]) -> int:
    """Orthanc's TotalDiskSize (bytes, sent as a string)."""
    try:
        return int(statistics.get("TotalDiskSize", 0))
    except (TypeError, ValueError):
        return 0


def _series(series: growth.Series) -> dict[str, Any]:
    return {"starts": [iso_utc(start) for start in series.starts], "values": list(series.values),
            "highest": series.highest}

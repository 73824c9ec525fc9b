"""One audit record as the gate and the services build it, before it is chained."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class AuditRecord:
    ts: str
    actor: str
    action: str
    outcome: str  # allow | deny | success | failure
    reason: str
    roles: str = ""
    source_ip: str = ""
    method: str = ""
    path: str = ""
    route_class: str = ""
    level: str = ""
    orthanc_id: str = ""
    patient_id: str = ""
    study_uid: str = ""
    count: int = 1
    detail: str = ""

"""One audit record as the gate and the services build it, before it is chained."""

from __future__ import annotations

from collections.abc import Iterable
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


PATIENT_ID_WIDTH = 128  # the audit's patient_id column
# Ends a patient_id list cut to fit the column: no PatientID holds a backslash (DICOM's LO forbids it).
LIST_CUT = "\\"


def patients_named(patient_ids: Iterable[str]) -> tuple[str, dict[str, list[str]]]:
    """The patient_id column for the patients a record names (comma-separated, for searching), and
    what its detail must add: the exact list whenever it names several (a PatientID may hold a
    comma) or the column could not hold them all (cut between two ids, never inside one, and
    ended with LIST_CUT)."""
    ids = sorted(set(patient_ids))
    joined = ",".join(ids)
    if len(ids) <= 1 and len(joined) <= PATIENT_ID_WIDTH:
        return joined, {}
    if len(joined) <= PATIENT_ID_WIDTH:
        return joined, {"patients": ids}
    kept = ""
    for patient_id in ids:
        longer = f"{kept},{patient_id}" if kept else patient_id
        if len(longer) + len("," + LIST_CUT) > PATIENT_ID_WIDTH:
            break
        kept = longer
    return (f"{kept},{LIST_CUT}" if kept else LIST_CUT), {"patients": ids}

"""Holds what a caller who is not an admin uploads to the patient and study of their grant.

The request filter never sees a request's body, so the gate cannot check the objects of a STOW-RS
upload before letting it through. It notes instead what the request may store, against the HTTP
thread serving it; Orthanc then hands every object it is about to store to the received-instance
callback, on that same thread (the DICOMweb plugin stores each part through the core
synchronously), and an object carrying another patient or study is discarded and audited.

Keyed by the OS thread id, not a threading.local: the Python plugin gives each callback a fresh
Python thread state. Every request's full check clears its thread's entry first, so a note never
outlives the request it was made for (requests answered from the decision cache are GETs, which
store nothing).
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pydicom
from pydicom.errors import InvalidDicomError

from plugin.audit.record import AuditRecord
from plugin.policies.uploads import Identity, upload_decision


@dataclass(frozen=True)
class Expected:
    allowed: frozenset[Identity]
    refusal: Callable[[str, Identity | None], None]  # audits a refused object: (reason, what it carried)


class UploadGuard:
    def __init__(self) -> None:
        self._expected: dict[int, Expected] = {}

    def begin_request(self) -> None:
        """A new request on this thread: whatever the last one was allowed to store, this one is not."""
        self._expected.pop(threading.get_ident(), None)

    def expect(self, allowed: frozenset[Identity], refusal: Callable[[str, Identity | None], None]) -> None:
        """The request being served on this thread may store objects of these (PatientID, study) only."""
        self._expected[threading.get_ident()] = Expected(allowed, refusal)

    @property
    def expecting(self) -> bool:
        return threading.get_ident() in self._expected

    def received(self, dicom: bytes) -> bool:
        """May Orthanc store this object (True), or must it be discarded (False)?

        Objects stored outside a held upload (modalities, admins, jobs) are not looked at."""
        expected = self._expected.get(threading.get_ident())
        if expected is None:
            return True
        carried = read_identity(dicom)
        decision = upload_decision(expected.allowed, carried)
        if not decision.allowed:
            expected.refusal(decision.reason, carried)
        return decision.allowed


def read_identity(dicom: bytes) -> Identity | None:
    """(PatientID, StudyInstanceUID) of a DICOM object; None when it cannot be read."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(dicom), stop_before_pixels=True,
                                  specific_tags=["PatientID", "StudyInstanceUID"])
    except (InvalidDicomError, ValueError, EOFError, OSError, AttributeError, KeyError, TypeError):
        return None
    patient_id, study_uid = dataset.get("PatientID"), dataset.get("StudyInstanceUID")
    if not isinstance(patient_id, str) or not study_uid:
        return None
    return patient_id, str(study_uid)


def refused_upload_record(record: AuditRecord, reason: str, carried: Identity | None) -> AuditRecord:
    """The audit row of a refused object: the upload's row, with what the object carried."""
    return dataclasses.replace(record, outcome="deny", reason=reason[:512],
                               detail=json.dumps({"object": {"PatientID": carried[0], "StudyInstanceUID": carried[1]}}
                                                 if carried else {"object": None}))

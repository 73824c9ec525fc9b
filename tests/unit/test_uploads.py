"""policies/uploads.py and services/uploads.py: a held upload stores only its study's objects."""

from __future__ import annotations

import io
import threading

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from plugin.policies.types import Action, RouteInfo
from plugin.policies.uploads import stores_objects, upload_decision
from plugin.services.uploads import UploadGuard, read_identity

GRANTED = frozenset({("PAT-1", "1.1")})


def dicom(patient_id: str | None = "PAT-1", study_uid: str | None = "1.1") -> bytes:
    dataset = pydicom.Dataset()
    if patient_id is not None:
        dataset.PatientID = patient_id
    if study_uid is not None:
        dataset.StudyInstanceUID = study_uid
    dataset.SOPInstanceUID = generate_uid()
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize(("carried", "allowed", "reason"), [
    (("PAT-1", "1.1"), True, "upload into the granted study"),
    (("PAT-2", "1.1"), False, "upload refused: the object's PatientID 'PAT-2' is not the patient of the study"),
    (("pat-1", "1.1"), False, "upload refused: the object's PatientID 'pat-1'"),
    (("PAT-1", "2.1"), False, "upload refused: the object belongs to study '2.1'"),
    (None, False, "upload refused: the object's PatientID and StudyInstanceUID could not be read"),
])
def test_upload_decision(carried, allowed, reason):
    decision = upload_decision(GRANTED, carried)
    assert decision.allowed is allowed and decision.reason.startswith(reason)


def test_only_stow_into_a_study_stores_objects():
    stow = RouteInfo("dicomweb", Action.ANNOTATE, "POST", "/dicom-web/studies/1.1", study_uid="1.1")
    assert stores_objects(stow)
    assert not stores_objects(RouteInfo("dicomweb", Action.VIEW, "GET", "/dicom-web/studies/1.1"))
    assert not stores_objects(RouteInfo("studies", Action.ANNOTATE, "PUT", "/studies/x/metadata/1024"))


@pytest.mark.parametrize(("patient_id", "study_uid", "identity"), [
    ("PAT-1", "1.1", ("PAT-1", "1.1")), ("", "1.1", ("", "1.1")), (None, "1.1", None), ("PAT-1", None, None),
])
def test_read_identity(patient_id, study_uid, identity):
    assert read_identity(dicom(patient_id, study_uid)) == identity


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")  # pydicom's, about the junk
@pytest.mark.parametrize("junk", [b"", b"not DICOM at all", b"\0" * 128 + b"DICM" + b"\xff" * 20])
def test_read_identity_of_junk_is_none(junk):
    assert read_identity(junk) is None


def test_an_upload_held_on_one_thread_holds_nothing_on_another():
    guard = UploadGuard()
    refused: list = []
    guard.expect(GRANTED, lambda reason, carried: refused.append((reason, carried)))
    assert guard.received(dicom("PAT-1", "1.1")) is True
    assert guard.received(dicom("PAT-2", "1.1")) is False
    assert refused == [(upload_decision(GRANTED, ("PAT-2", "1.1")).reason, ("PAT-2", "1.1"))]
    elsewhere: list[bool] = []
    thread = threading.Thread(target=lambda: elsewhere.append(guard.received(dicom("PAT-2", "1.1"))))
    thread.start()
    thread.join()
    assert elsewhere == [True]  # a modality's store on another thread is not this upload's business
    guard.begin_request()
    assert guard.received(dicom("PAT-2", "1.1")) is True and not guard.expecting

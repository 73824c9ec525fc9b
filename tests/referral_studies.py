"""Small studies made with pydicom that carry a referral: the referring physician's name (as text, or
as raw bytes in a declared character set), the HPCSA number in ReferringPhysicianIdentificationSequence,
RequestingPhysician, and the patient's tags. Used by the referral tests and bench/ingest.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

SIZE = 16  # pixels a side: small, so hundreds of instances push in seconds


@dataclass(frozen=True)
class Referral:
    """What a study says about its patient and referrer. A name given as bytes is written as is."""

    patient_id: str
    patient_name: str = "TEST^PATIENT"
    birth_date: str = "19700101"
    sex: str = "F"
    referring: str | bytes | None = None
    hpcsa_codes: tuple[str, ...] = ()
    requesting: str | None = None
    charset: str | None = None
    accession: str = ""
    description: str = "CT CHEST"


def write_study(folder: Path, referral: Referral, instances: int = 1) -> tuple[str, list[Path]]:
    """A new study of `instances` CT slices in `folder`: (StudyInstanceUID, files)."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    paths = []
    for number in range(1, instances + 1):
        dataset = _slice(referral, study_uid, series_uid, number)
        path = folder / f"{dataset.SOPInstanceUID}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return study_uid, paths


def _slice(referral: Referral, study_uid: str, series_uid: str, number: int) -> Dataset:
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    if referral.charset:
        ds.SpecificCharacterSet = referral.charset
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientID, ds.PatientName = referral.patient_id, referral.patient_name
    ds.PatientBirthDate, ds.PatientSex = referral.birth_date, referral.sex
    ds.StudyDate, ds.StudyTime, ds.Modality = "20261204", "101500", "CT"
    ds.StudyDescription, ds.AccessionNumber = referral.description, referral.accession
    ds.SeriesNumber, ds.InstanceNumber = 1, number
    if referral.referring is not None:
        ds.add_new(0x00080090, "PN", referral.referring)
    if referral.hpcsa_codes:
        codes = []
        for value in referral.hpcsa_codes:
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "HPCSA", "HPCSA number"
            codes.append(code)
        person = Dataset()
        person.PersonIdentificationCodeSequence = Sequence(codes)
        ds.ReferringPhysicianIdentificationSequence = Sequence([person])
    if referral.requesting is not None:
        ds.RequestingPhysician = referral.requesting
    ds.Rows = ds.Columns = SIZE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes((i * 7 + number) % 256 for i in range(SIZE * SIZE * 2))
    return ds

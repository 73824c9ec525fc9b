"""Generates the small synthetic DICOM files in this folder (run it again to recreate them).

Two patients, one study each, two tiny CT instances per study, with the referral tags the Gate
reads (ReferringPhysicianName, AccessionNumber). No real patient data.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

HERE = Path(__file__).resolve().parent
ROOT = "1.2.826.0.1.3680043.10.1192"  # a UID root for test data only

PATIENTS = [
    ("GATE-P001", "Dlamini^Thandi", "Nkosi^Sipho^^Dr", "ACC1001"),
    ("GATE-P002", "van der Merwe^Anna", "Botha^Pieter^^Dr", "ACC1002"),
]


def instance(n_patient: int, n_instance: int) -> Dataset:
    patient_id, name, referrer, accession = PATIENTS[n_patient]
    study = f"{ROOT}.{n_patient + 1}"
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = f"{study}.1.{n_instance + 1}"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = patient_id, name, "19800101", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, f"{study}.1"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20261101", "101500", accession
    ds.ReferringPhysicianName, ds.Modality, ds.StudyID = referrer, "CT", "1"
    ds.SeriesNumber, ds.InstanceNumber = 1, n_instance + 1
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = struct.pack("<256H", *(v * (n_instance + 1) % 4096 for v in range(256)))
    return ds


def main() -> None:
    for p in range(len(PATIENTS)):
        for i in range(2):
            instance(p, i).save_as(HERE / f"patient{p + 1}-instance{i + 1}.dcm", enforce_file_format=True)


if __name__ == "__main__":
    main()

"""Real-size CT slices made with pydicom: 512x512, 16 bits (about 0.5 MB each), a body-shaped disc
with a bone in it and noise, as a viewer would be given. Used by the OHIF browser test and by
bench/viewer_throughput.py."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid


@dataclass(frozen=True)
class Patient:
    patient_id: str
    name: str
    birth_date: str = "19700101"
    sex: str = "O"


def _high_bytes(size: int, slice_index: int, count: int) -> bytes:
    """The high byte of every pixel, row by row: air 0x00, soft tissue 0x04 (0..255 HU), bone 0x07."""
    middle = (slice_index + 0.5) / count - 0.5
    body = size * 0.42 * math.sqrt(max(0.05, 1 - (middle / 0.6) ** 2))
    bone = size * 0.08
    centre = size / 2
    rows = []
    for y in range(size):
        dy = abs(y + 0.5 - centre)
        half = int(math.sqrt(body * body - dy * dy)) if dy < body else 0
        inner = int(math.sqrt(bone * bone - dy * dy)) if dy < bone else 0
        left = int(centre) - half
        row = b"\x00" * left + b"\x04" * (half - inner) + b"\x07" * (2 * inner) + b"\x04" * (half - inner)
        rows.append(row + b"\x00" * (size - len(row)))
    return b"".join(rows)


def pixel_data(size: int, slice_index: int, count: int) -> bytes:
    """Little-endian 16-bit pixels: the shape above with random low bytes (noise that does not
    compress away, as a real scan's does not)."""
    pixels = bytearray(2 * size * size)
    pixels[0::2] = os.urandom(size * size)
    pixels[1::2] = _high_bytes(size, slice_index, count)
    return bytes(pixels)


def ct_study(folder: Path, patient: Patient, slices: int, size: int = 512, study_date: str = "20250110",
             description: str = "CT CHEST", accession: str = "") -> tuple[str, list[Path]]:
    """Write one study of one CT series into `folder`; its StudyInstanceUID and files."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    files = []
    for index in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID = patient.name, patient.patient_id
        ds.PatientBirthDate, ds.PatientSex = patient.birth_date, patient.sex
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.StudyDate = ds.SeriesDate = study_date
        ds.StudyTime = ds.SeriesTime = "101500"
        ds.StudyID, ds.AccessionNumber = "1", accession or f"ACC{patient.patient_id}"
        ds.StudyDescription, ds.SeriesDescription = description, f"{description} axial"
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.Manufacturer = "CT", "Orthanc Gate tests"
        ds.SeriesNumber, ds.InstanceNumber = 1, index + 1
        ds.ImagePositionPatient = [-180.0, -180.0, -index * 1.25]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation, ds.SliceThickness, ds.PixelSpacing = -index * 1.25, 1.25, [0.703125, 0.703125]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = pixel_data(size, index, slices)
        path = folder / f"{study_uid}-{index + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return study_uid, files

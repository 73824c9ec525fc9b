"""Helpers for test_grants_enforcement.py: what each patient of the DICOMDIR set is called and
identified by, callers with their own credentials, grants made through the API, new studies built
from old ones, and a detector of identifiers in response bodies."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import requests
from pydicom.uid import generate_uid

from tests.conftest import Server
from tests.harness import storescu
from tests.referral_studies import Referral, write_study

DOCTOR_ROLE = ["referring_doctor"]
PASSWORD = "a doctor's long password"


# -- the sample set, as the admin sees it ----------------------------------------------------------

@dataclass(frozen=True)
class Resource:
    oid: str  # Orthanc id
    uid: str  # its DICOM UID
    study_uid: str = ""
    series_uid: str = ""


@dataclass
class PatientData:
    patient_id: str
    name: str
    oid: str
    studies: list[Resource] = field(default_factory=list)
    series: list[Resource] = field(default_factory=list)
    instances: list[Resource] = field(default_factory=list)

    def study_by_uid(self, uid: str) -> Resource:
        return next(s for s in self.studies if s.uid == uid)

    def series_of(self, study: Resource) -> list[Resource]:
        return [s for s in self.series if s.study_uid == study.uid]

    def instances_of(self, series: Resource) -> list[Resource]:
        return [i for i in self.instances if i.series_uid == series.uid]

    @property
    def oids(self) -> set[str]:
        return {self.oid} | {r.oid for r in (*self.studies, *self.series, *self.instances)}

    def identifiers(self) -> list[str]:
        """Everything that names this patient or one of their resources."""
        return [self.patient_id, self.name, *(r.uid for r in (*self.studies, *self.series, *self.instances)),
                *sorted(self.oids)]


def catalog(srv: Server) -> dict[str, PatientData]:
    """Every patient on the server by PatientID, with the Orthanc ids and UIDs of all they hold."""
    found: dict[str, PatientData] = {}
    for patient in _ok(srv.admin("GET", "/patients?expand")):
        tags = patient["MainDicomTags"]
        data = PatientData(tags["PatientID"], tags.get("PatientName", ""), patient["ID"])
        studies = _ok(srv.admin("GET", f"/patients/{patient['ID']}/studies"))
        study_uid_of = {s["ID"]: s["MainDicomTags"]["StudyInstanceUID"] for s in studies}
        data.studies = [Resource(s["ID"], study_uid_of[s["ID"]], study_uid_of[s["ID"]]) for s in studies]
        series = _ok(srv.admin("GET", f"/patients/{patient['ID']}/series"))
        series_by_oid = {s["ID"]: Resource(s["ID"], s["MainDicomTags"]["SeriesInstanceUID"],
                                           study_uid_of[s["ParentStudy"]]) for s in series}
        data.series = sorted(series_by_oid.values(), key=lambda r: r.uid)
        for instance in _ok(srv.admin("GET", f"/patients/{patient['ID']}/instances")):
            parent = series_by_oid[instance["ParentSeries"]]
            data.instances.append(Resource(instance["ID"], instance["MainDicomTags"]["SOPInstanceUID"],
                                           parent.study_uid, parent.uid))
        data.instances.sort(key=lambda r: r.uid)
        found[data.patient_id] = data
    return found


def _ok(answer: requests.Response):  # noqa: ANN202 - JSON of any shape
    assert answer.status_code == 200, (answer.request.method, answer.url, answer.status_code, answer.text[:200])
    return answer.json()


# -- callers and grants ---------------------------------------------------------------------------

@dataclass
class Caller:
    """A signed-in user calling with Basic credentials (or a session cookie, see `signed_in`)."""

    srv: Server
    username: str
    password: str = PASSWORD

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.srv.url(path), auth=(self.username, self.password), timeout=60,
                                allow_redirects=False, **kwargs)

    def signed_in(self) -> requests.Session:
        session = requests.Session()
        answer = session.post(self.srv.url("/gate/login"), json={"username": self.username, "password": self.password},
                              timeout=10)
        assert answer.status_code == 200, answer.text
        assert session.cookies.get("gate_session")
        return session


def new_doctor(srv: Server, username: str) -> Caller:
    """A referring doctor of this module alone (gatectl writes the store beside the running server)."""
    srv.proc.create_user(username, DOCTOR_ROLE, PASSWORD)
    return Caller(srv, username)


def doctors_granted(srv: Server, levels: dict[str, str], patient_id: str) -> None:
    """A new doctor per username of `levels`, each granted patient `patient_id` at their level."""
    for username, level in levels.items():
        new_doctor(srv, username)
        grant(srv, username, level, patient_id=patient_id)


def grant(srv: Server, user: str, level: str, **target: str) -> dict:
    answer = srv.admin("POST", "/gate/api/grants", json={"user": user, "level": level, **target})
    assert answer.status_code == 201, answer.text
    return answer.json()


def revoke(srv: Server, grant_id: int) -> None:
    answer = srv.admin("DELETE", f"/gate/api/grants/{grant_id}")
    assert answer.status_code == 200, answer.text


def active_grants(srv: Server, user: str) -> list[dict]:
    answer = srv.admin("GET", f"/gate/api/grants?user={user}&limit=1000")
    assert answer.status_code == 200, answer.text
    return answer.json()["grants"]


# -- new data for an existing patient -------------------------------------------------------------

def copied_study(files: list[Path], **changes: str) -> tuple[str, list[bytes]]:
    """The same images as a new study (new Study, Series and SOP Instance UIDs), same patient
    unless `changes` (DICOM keywords) say otherwise."""
    study_uid = generate_uid()
    series_uids: dict[str, str] = {}
    copies = []
    for path in files:
        dataset = pydicom.dcmread(path)
        for keyword, value in changes.items():
            setattr(dataset, keyword, value)
        dataset.StudyInstanceUID = study_uid
        dataset.SeriesInstanceUID = series_uids.setdefault(dataset.SeriesInstanceUID, generate_uid())
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        copies.append(buffer.getvalue())
    return study_uid, copies


def files_of_patient(files: list[Path], patient_id: str) -> list[Path]:
    return [p for p in files if pydicom.dcmread(p, stop_before_pixels=True).PatientID == patient_id]


# -- finding identifiers in what came back --------------------------------------------------------

class LeakDetector:
    """Finds identifiers in a response body: raw bytes, inside ZIP archives (names and members),
    and the spellings a person name takes (DICOM `^`, spaces, JSON-escaped)."""

    def __init__(self, identifiers: list[str], ignore_case: bool = True) -> None:
        self._patterns: list[tuple[str, re.Pattern[bytes]]] = []
        for identifier in dict.fromkeys(identifiers):
            for spelling in _spellings(identifier):
                if re.fullmatch(r"[0-9.\-a-f]+", spelling):
                    # UIDs, PatientIDs and Orthanc ids: not as part of a longer number or UID.
                    pattern = rb"(?<![0-9A-Za-z.\-])" + re.escape(spelling.encode()) + rb"(?![0-9A-Za-z\-]|\.[0-9])"
                else:
                    pattern = re.escape(spelling.encode())
                self._patterns.append((identifier, re.compile(pattern, re.IGNORECASE if ignore_case else 0)))

    def found_in(self, body: bytes) -> list[str]:
        found = {identifier for identifier, pattern in self._patterns if pattern.search(body)}
        for name, member in _zip_members(body):
            found.update(identifier for identifier, pattern in self._patterns
                         if pattern.search(name) or pattern.search(member))
        return sorted(found)


def _spellings(identifier: str) -> list[str]:
    if "^" not in identifier:
        return [identifier]
    parts = [p for p in identifier.split("^") if p]
    return [identifier, " ".join(parts), identifier.replace("^", "\\u005e"), identifier.replace("^", "\\u005E"),
            *(p for p in parts if len(p) >= 5)]


def _zip_members(body: bytes) -> list[tuple[bytes, bytes]]:
    if not body.startswith(b"PK"):
        return []
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return [(info.filename.encode("utf-8", "replace"), archive.read(info)) for info in archive.infolist()]
    except zipfile.BadZipFile:
        return []



# -- referrals: doctors registered and studies pushed as a modality would ------------------------------

def register_doctors(srv: Server, records: dict[str, dict]) -> dict[str, int]:
    """Register each doctor through the API; their ids by the caller's key."""
    ids = {}
    for key, fields in records.items():
        answer = srv.admin("POST", "/gate/api/doctors", json=fields)
        assert answer.status_code == 201, answer.text
        ids[key] = answer.json()["id"]
    return ids


def push_study(srv: Server, folder: Path, referral: Referral, instances: int = 1) -> str:
    """A new study saying `referral`, pushed with storescu; its StudyInstanceUID."""
    study_uid, files = write_study(folder, referral, instances)
    pushed = storescu(srv.proc.dicom_port, files)
    assert pushed.returncode == 0, pushed.stderr
    return study_uid

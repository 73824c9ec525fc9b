"""Grants enforced on a real Orthanc holding only pydicom's DICOMDIR set (3 patients, 7 studies).

A doctor granted one patient reads all of that patient by every route family, at the level
granted, and nothing of the other two patients by any route, list or search; changes to the
others never go through; revocation and expiry act at once; grant requests with bad input are
refused whole, with a JSON error; reads and grant changes are audited.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from tests.conftest import (
    ADMIN,
    DOCTOR,
    DOCTOR_PASSWORD,
    Server,
    dicomdir_files,
    start_gate,
    upload_dicomdir,
    wait_for_audit,
)
from tests.harness import storescu
from tests.integration.grants_support import (
    Caller,
    LeakDetector,
    PatientData,
    active_grants,
    catalog,
    copied_study,
    files_of_patient,
    grant,
    new_doctor,
    revoke,
)

GRANTED = "77654033"  # Doe^Archibald: 2 studies, 4 series, 7 instances, all with pixel data
OTHERS = ("98890234", "12345678")  # Doe^Peter: 4 studies with images; Citizen^Jan: 1 study, no pixel data
DENIED = (400, 403, 404)
# What changes between two reads of the same resource without anyone changing it.
VOLATILE = ("IsStable", "LastUpdate")

# Requests naming their resources in the body: Orthanc's incoming-request filter is never given the
# body (seen on 1.10.1 with Python plugin 4.0), so the gate cannot check them: admins only.
BODY_ROUTES = ("/tools/create-archive", "/tools/create-media", "/tools/create-media-extended")


# -- the server and what it holds -------------------------------------------------------------------

@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory):
    """This module's own Orthanc with the Gate, holding exactly the DICOMDIR set, uploaded by the admin."""
    srv = start_gate(tmp_path_factory.mktemp("gate-grants"), extra={"UserMetadata": {"GateNote": 1024}})
    try:
        upload_dicomdir(srv)
        yield srv
    finally:
        srv.proc.stop()


@pytest.fixture(scope="module")
def sample_set(gate: Server) -> dict[str, PatientData]:
    found = catalog(gate)
    assert sorted(found) == sorted((GRANTED, *OTHERS))
    assert sum(len(p.studies) for p in found.values()) == 7
    return found


@pytest.fixture(scope="module")
def download_grant(gate: Server, sample_set) -> dict:
    """drnkosi (the shared fixtures' referring doctor) holds `download` on the granted patient."""
    return grant(gate, DOCTOR, "download", patient_id=GRANTED)


@pytest.fixture(scope="module")
def doctor(gate: Server, download_grant) -> Caller:
    return Caller(gate, DOCTOR, DOCTOR_PASSWORD)


@pytest.fixture(scope="module")
def mine(sample_set) -> dict[str, str]:
    """The granted patient's first study, series and instance, by Orthanc id and by UID."""
    patient = sample_set[GRANTED]
    study = patient.studies[0]
    series = patient.series_of(study)[0]
    instance = patient.instances_of(series)[0]
    return {"patient": patient.oid, "study": study.oid, "series": series.oid, "instance": instance.oid,
            "patient_id": patient.patient_id, "study_uid": study.uid, "series_uid": series.uid,
            "sop_uid": instance.uid}


@pytest.fixture(scope="module")
def leaks(sample_set) -> LeakDetector:
    """Finds any identifier of the two patients the doctor holds nothing on."""
    return LeakDetector([identifier for pid in OTHERS for identifier in sample_set[pid].identifiers()])


def wado(study_uid: str, series_uid: str, sop_uid: str, content_type: str = "application/dicom") -> str:
    return (f"/wado?requestType=WADO&studyUID={study_uid}&seriesUID={series_uid}&objectUID={sop_uid}"
            f"&contentType={content_type}")


def find(level: str, query: dict[str, str] | None = None, expand: bool = True, **more: Any) -> str:
    return json.dumps({"Level": level, "Query": query or {}, "Expand": expand, **more})


# -- 1. a download grant on one patient opens every read of that patient ---------------------------

# (method, path, body); {patient}, {study_uid}, ... are filled from `mine`.
GRANTED_READS: list[Any] = [
    ("GET", "/patients/{patient}", None),
    ("GET", "/patients/{patient}/studies", None),
    ("GET", "/patients/{patient}/series", None),
    ("GET", "/patients/{patient}/instances", None),
    ("GET", "/patients/{patient}/archive", None),
    ("GET", "/patients/{patient}/media", None),
    ("GET", "/studies/{study}", None),
    ("GET", "/studies/{study}/series", None),
    ("GET", "/studies/{study}/instances", None),
    ("GET", "/studies/{study}/patient", None),
    ("GET", "/studies/{study}/shared-tags", None),
    ("GET", "/studies/{study}/archive", None),
    ("GET", "/studies/{study}/media", None),
    ("GET", "/series/{series}", None),
    ("GET", "/series/{series}/instances", None),
    ("GET", "/series/{series}/study", None),
    ("GET", "/series/{series}/archive", None),
    ("GET", "/instances/{instance}", None),
    ("GET", "/instances/{instance}/file", None),
    ("GET", "/instances/{instance}/preview", None),
    ("GET", "/instances/{instance}/rendered", None),
    ("GET", "/instances/{instance}/image-uint8", None),
    ("GET", "/instances/{instance}/tags", None),
    ("GET", "/instances/{instance}/simplified-tags", None),
    ("GET", "/instances/{instance}/header", None),
    ("GET", "/instances/{instance}/content/0010-0010", None),
    ("GET", "/instances/{instance}/frames/0/raw", None),
    ("GET", "/instances/{instance}/frames/0/preview", None),
    ("GET", "/instances/{instance}/metadata", None),
    ("GET", "/instances/{instance}/attachments", None),
    ("GET", "/dicom-web/studies/{study_uid}", None),
    ("GET", "/dicom-web/studies/{study_uid}/metadata", None),
    ("GET", "/dicom-web/studies/{study_uid}/series", None),
    ("GET", "/dicom-web/studies/{study_uid}/rendered", None),
    ("GET", "/dicom-web/studies/{study_uid}/series/{series_uid}", None),
    ("GET", "/dicom-web/studies/{study_uid}/series/{series_uid}/metadata", None),
    ("GET", "/dicom-web/studies/{study_uid}/series/{series_uid}/instances", None),
    ("GET", "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}", None),
    ("GET", "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/metadata", None),
    ("GET", "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/rendered", None),
    ("GET", "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/1", None),
    ("GET", wado("{study_uid}", "{series_uid}", "{sop_uid}"), None),
    ("GET", wado("{study_uid}", "{series_uid}", "{sop_uid}", "image/jpeg"), None),
    ("GET", "/patients", None),
    ("GET", "/patients?expand", None),
    ("GET", "/studies?expand", None),
    ("GET", "/series", None),
    *[("POST", "/tools/find", find(level, expand=expand).replace("{", "{{").replace("}", "}}"))
      for level in ("Patient", "Study", "Series", "Instance") for expand in (False, True)],
    *[("POST", "/tools/lookup", "{" + key + "}") for key in ("patient_id", "study_uid", "series_uid", "sop_uid")],
    ("GET", "/statistics", None),
    # QIDO searches naming what they are about (docs/access-levels.md, "DICOMweb searches").
    ("GET", "/dicom-web/studies?StudyInstanceUID={study_uid}", None),
    ("GET", "/dicom-web/studies?0020000D={study_uid}", None),
    ("GET", "/dicom-web/studies?PatientID={patient_id}", None),
    ("GET", "/dicom-web/studies?00100020={patient_id}", None),
    ("GET", "/dicom-web/series?StudyInstanceUID={study_uid}", None),
    ("GET", "/dicom-web/series?PatientID={patient_id}", None),
    ("GET", "/dicom-web/instances?StudyInstanceUID={study_uid}", None),
    ("GET", "/dicom-web/studies?StudyInstanceUID={study_uid}&includefield=all", None),
]


def _read_id(entry: Any) -> str:
    method, path, body = entry.values if hasattr(entry, "values") else entry
    label = f"{method} {path}"
    return f"{label} {body}" if body and path.startswith("/tools/") else label


@pytest.mark.parametrize(("method", "path", "body"), GRANTED_READS, ids=[_read_id(e) for e in GRANTED_READS])
def test_download_grant_opens_every_read_of_the_patient(doctor: Caller, gate: Server, mine, leaks,
                                                         method, path, body):
    path, body = path.format(**mine), body.format(**mine) if body else None
    answer = doctor(method, path, data=body)
    assert answer.status_code == 200, (method, path, answer.status_code, answer.text[:200])
    assert answer.content not in (b"", b"[]", b"{}")
    assert leaks.found_in(answer.content) == []
    # The same bytes the admin gets, for answers that are not built per call (archives and
    # multipart bodies carry random names or boundaries; lists, statistics are trimmed).
    if method == "GET" and path.startswith(("/patients/", "/studies/", "/series/", "/instances/")) \
            and not path.endswith(("/archive", "/media")):
        assert comparable(answer) == comparable(gate.admin(method, path))


def comparable(answer: requests.Response) -> Any:
    """An answer without what may change between two reads (a study becoming stable)."""
    if not answer.headers.get("Content-Type", "").startswith("application/json"):
        return answer.content
    data = answer.json()
    strip = lambda item: {k: v for k, v in item.items() if k not in VOLATILE} if isinstance(item, dict) else item  # noqa: E731
    return [strip(item) for item in data] if isinstance(data, list) else strip(data)


def test_lists_and_searches_hold_exactly_the_granted_patient(doctor: Caller, gate: Server):
    patient = catalog(gate)[GRANTED]  # as it is now: later tests may add studies to this patient
    expected = {"Patient": {patient.oid}, "Study": {s.oid for s in patient.studies},
                "Series": {s.oid for s in patient.series}, "Instance": {i.oid for i in patient.instances}}
    for level, plural in (("Patient", "patients"), ("Study", "studies"), ("Series", "series"),
                          ("Instance", "instances")):
        if plural == "instances":
            # The core keeps /instances (its POST is the upload): the flat list is for admins.
            assert doctor("GET", "/instances").status_code == 403
        else:
            assert set(doctor("GET", f"/{plural}").json()) == expected[level], plural
            assert {r["ID"] for r in doctor("GET", f"/{plural}?expand").json()} == expected[level], plural
        assert set(doctor("POST", "/tools/find", data=find(level, expand=False)).json()) == expected[level]
        assert {r["ID"] for r in doctor("POST", "/tools/find", data=find(level)).json()} == expected[level]
    for resource in (*patient.studies, *patient.series, *patient.instances):
        found = doctor("POST", "/tools/lookup", data=resource.uid).json()
        assert [r["ID"] for r in found] == [resource.oid]
    assert doctor("GET", "/statistics").json() == {
        "CountPatients": 1, "CountStudies": len(patient.studies), "CountSeries": len(patient.series),
        "CountInstances": len(patient.instances)}


# -- 1b. DICOMweb searches naming what they are about ---------------------------------------------

def qido_values(answer: requests.Response, tag: str) -> set[str]:
    """Every value of one tag (e.g. "0020000D") in a QIDO answer (DICOM JSON)."""
    return {value for item in answer.json() for value in item.get(tag, {}).get("Value", [])}


def test_qido_by_a_granted_study_answers_that_study_only(doctor: Caller, mine, leaks):
    for key in ("StudyInstanceUID", "0020000D", "0020,000D"):
        answer = doctor("GET", f"/dicom-web/studies?{key}={mine['study_uid']}")
        assert answer.status_code == 200, (key, answer.status_code)
        assert qido_values(answer, "0020000D") == {mine["study_uid"]}
        assert qido_values(answer, "00100020") == {GRANTED}
        assert leaks.found_in(answer.content) == []


def test_qido_by_the_granted_patient_answers_their_studies(doctor: Caller, gate: Server, leaks):
    patient = catalog(gate)[GRANTED]  # as it is now: later tests add studies to this patient
    for key in ("PatientID", "00100020"):
        answer = doctor("GET", f"/dicom-web/studies?{key}={GRANTED}")
        assert answer.status_code == 200, (key, answer.status_code)
        assert qido_values(answer, "0020000D") == {s.uid for s in patient.studies}
        assert qido_values(answer, "00100020") == {GRANTED}
        assert leaks.found_in(answer.content) == []


def test_qido_for_the_series_of_a_granted_study_answers_its_series_only(doctor: Caller, sample_set, mine, leaks):
    patient = sample_set[GRANTED]
    study = patient.study_by_uid(mine["study_uid"])
    answer = doctor("GET", f"/dicom-web/series?StudyInstanceUID={mine['study_uid']}")
    assert answer.status_code == 200
    assert qido_values(answer, "0020000E") == {s.uid for s in patient.series_of(study)}
    assert qido_values(answer, "0020000D") == {mine["study_uid"]}
    assert leaks.found_in(answer.content) == []
    instances = doctor("GET", f"/dicom-web/instances?StudyInstanceUID={mine['study_uid']}")
    assert instances.status_code == 200
    assert qido_values(instances, "00080018") == {i.uid for s in patient.series_of(study)
                                                  for i in patient.instances_of(s)}


# A tag named twice (in any spelling: the DICOMweb plugin keeps the last one), or a value that is not
# exact, names nothing the gate can check: refused, with the reason in the audit; or, where the
# DICOMweb plugin searches through the Gate's /tools/find (1.9 and later), answered trimmed.
REFUSED_QIDO = [
    "studies?StudyInstanceUID={study_uid}&0020000D={their_study}",
    "studies?0020000D={their_study}&StudyInstanceUID={study_uid}",
    "studies?StudyInstanceUID={study_uid}&0020,000D={their_study}",
    "studies?StudyInstanceUID={study_uid}&0020000D={study_uid}",
    "series?StudyInstanceUID={study_uid}&0020000d={their_study}",
    "studies?PatientID={patient_id}&00100020={their_patient}",
    "studies?PatientID={patient_id}&0010,0020={their_patient}",
    "studies?00100020={their_patient}&PatientID={patient_id}",
    "instances?PatientID={patient_id}&00100020=*",
    "studies?PatientID=*",
    "studies?PatientID=7765*",
    "studies?PatientID=7765403?",
    "studies?PatientID={patient_id}*",
    "studies?PatientID={patient_id}%5C{their_patient}",
    "studies?PatientID={patient_id},{their_patient}",
    "studies?StudyInstanceUID=*",
    "studies?StudyInstanceUID={study_uid},{their_study}",
    "studies?StudyInstanceUID={study_uid}%5C{their_study}",
    "studies?StudyInstanceUID={study_uid}&PatientID={their_patient}&00100020={patient_id}",
    "studies?PatientName=Doe*",
    "studies",
]


@pytest.mark.parametrize("query", REFUSED_QIDO)
def test_qido_naming_a_tag_twice_or_not_exactly_is_refused(gate: Server, doctor: Caller, sample_set, mine, query):
    other = sample_set[OTHERS[0]]
    path = "/dicom-web/" + query.format(study_uid=mine["study_uid"], patient_id=GRANTED,
                                        their_study=other.studies[0].uid, their_patient=other.patient_id)
    answer = doctor("GET", path)
    # The answer is cut to the doctor's studies, whatever the question said.
    assert answer.status_code == 200, (path, answer.status_code)
    assert qido_values(answer, "00100020") <= {GRANTED}, path
    assert qido_values(answer, "0020000D") <= {s.uid for s in sample_set[GRANTED].studies}, path


def test_a_refused_search_is_audited_with_its_whole_query(gate: Server, doctor: Caller, sample_set):
    other = sample_set[OTHERS[0]]
    query = f"PatientID={GRANTED}&10,20=*&includefield=all&limit=7"
    assert doctor("GET", f"/dicom-web/series?{query}").status_code == 200
    rows = wait_for_audit(gate, "actor=? AND route_class='dicomweb_search' AND detail=?",
                          (DOCTOR, json.dumps({"query": query})))
    assert rows and rows[-1]["outcome"] == "allow" and rows[-1]["reason"] == "answer trimmed to the caller's grants"
    assert other.patient_id not in rows[-1]["detail"]


# -- 1c. what names its resources in the body is for admins; doctors download by GET ---------------

@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("body", ['["{study}"]', '{{"Resources": ["{study}", "{series}"]}}',
                                  '{{"Resources": ["{study}"], "Synchronous": true}}'],
                         ids=["list", "resources", "synchronous"])
def test_bundles_named_in_a_body_are_for_admins_only(gate: Server, doctor: Caller, mine, path, body):
    """Orthanc's request filter is never given the body, so the gate cannot tell whose images a
    POST /tools/create-archive or create-media names: refused to doctors, even for their own."""
    body = body.format(**mine)
    answer = doctor("POST", path, data=body)
    assert answer.status_code == 403, (path, answer.status_code)
    rows = wait_for_audit(gate, "actor=? AND method='POST' AND path=? AND outcome='deny'", (DOCTOR, path))
    assert rows and rows[-1]["reason"] == "admin only" and rows[-1]["route_class"] == "tools_archive"
    control = gate.admin("POST", path, data=body)
    assert control.status_code == 200 and control.content.startswith(b"PK"), (path, control.status_code)


def test_a_doctor_downloads_bundles_of_granted_resources_by_get(doctor: Caller, gate: Server, sample_set, mine,
                                                                leaks):
    patient = sample_set[GRANTED]
    study = patient.study_by_uid(mine["study_uid"])
    expected = len([i for s in patient.series_of(study) for i in patient.instances_of(s)])
    for path in (f"/studies/{mine['study']}/archive", f"/studies/{mine['study']}/media"):
        answer = doctor("GET", path)
        assert answer.status_code == 200 and answer.content.startswith(b"PK"), (path, answer.status_code)
        with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
            images = [n for n in archive.namelist() if not n.endswith("/") and "DICOMDIR" not in n]
        assert len(images) == expected, (path, images)
        assert leaks.found_in(answer.content) == []


def test_the_get_form_of_create_archive_is_refused_when_it_lists_anything_not_granted(doctor: Caller, sample_set,
                                                                                     mine):
    """`GET /tools/create-archive?resources=` is Orthanc 1.12's; on 1.10.1 Orthanc answers 405 to what
    the gate lets through. Anything listed that is not granted is refused by the gate first."""
    other = sample_set[OTHERS[0]]
    assert doctor("GET", f"/tools/create-archive?resources={mine['study']}").status_code != 403
    for theirs in (other.oid, other.studies[0].oid, other.series[0].oid, other.instances[0].oid):
        for resources in (f"{mine['study']},{theirs}", f"{theirs},{mine['study']}", theirs):
            assert doctor("GET", f"/tools/create-archive?resources={resources}").status_code == 403, resources
            assert doctor("GET", f"/tools/create-media?resources={resources}").status_code == 403, resources
    # Orthanc 1.10.1 refuses a GET overridden to POST itself (400) before the gate is asked.
    assert doctor("GET", f"/tools/create-archive?resources={mine['study']}&_method=POST").status_code in DENIED


def test_bulk_tools_merge_and_export_are_for_admins_only(gate: Server, tmp_path):
    """Even with full on the patient: the resources of bulk tools and merge are in the body, export
    writes a file on the server, and what modify, anonymize and split write (and where) is in the body."""
    surgeon = new_doctor(gate, "drbodyroutes")
    grant(gate, surgeon.username, "full", patient_id=GRANTED)
    patient = catalog(gate)[GRANTED]
    first, second = patient.studies[0], patient.studies[1]
    moved = patient.series_of(second)[0]
    instance = patient.instances[0]
    target = tmp_path / "exported.dcm"
    changes = [
        ("/tools/bulk-content", json.dumps({"Resources": [first.oid]})),
        ("/tools/bulk-modify", json.dumps({"Resources": [first.oid], "Level": "Study",
                                           "Replace": {"StudyDescription": "changed"}})),
        ("/tools/bulk-anonymize", json.dumps({"Resources": [first.oid]})),
        ("/tools/bulk-delete", json.dumps({"Resources": [first.oid]})),
        (f"/studies/{first.oid}/merge", json.dumps({"Resources": [moved.oid]})),
        (f"/instances/{instance.oid}/export", str(target)),
        # What these write, and under which patient, is in the body: into another patient's record.
        (f"/patients/{patient.oid}/modify", json.dumps({"Replace": {"PatientID": OTHERS[0]}, "Force": True})),
        (f"/studies/{first.oid}/modify", json.dumps({"Replace": {"PatientID": OTHERS[0]}, "Force": True})),
        (f"/studies/{first.oid}/anonymize", json.dumps({"Replace": {"PatientID": OTHERS[0]}, "Force": True})),
        (f"/series/{moved.oid}/modify", json.dumps({"Replace": {"PatientID": OTHERS[0]}, "Force": True})),
        (f"/studies/{second.oid}/split", json.dumps({"Series": [moved.oid], "Replace": {"PatientID": OTHERS[0]}})),
    ]
    for path, body in changes:
        answer = surgeon("POST", path, data=body)
        assert answer.status_code == 403, (path, answer.status_code)
        rows = wait_for_audit(gate, "actor=? AND path=? AND outcome='deny'", (surgeon.username, path))
        assert rows and rows[-1]["reason"] == "admin only", path
    assert catalog(gate)[GRANTED] == patient
    assert gate.admin("GET", f"/series/{moved.oid}").json()["ParentStudy"] == second.oid
    assert not target.exists()
    # What the same grant does allow still works.
    assert surgeon("GET", f"/studies/{first.oid}/archive").status_code == 200


# -- 2. nothing of the other two patients, by any route ------------------------------------------

@dataclass(frozen=True)
class Probe:
    """One request aimed at a patient the doctor holds nothing on.

    kind: "read" names one of their resources (must be refused; the admin gets 200 and, unless
    the answer is opaque, their identifiers: proof the request was worth making); "mixed"
    mixes a granted resource with one of theirs (must not succeed); "empty" searches for them
    (refused, or answered with nothing); "list" lists or searches everything (refused, or trimmed
    to the granted patient); "any" may answer anything that names none of theirs."""

    kind: str
    method: str
    path: str
    body: str | None = None
    opaque: bool = False  # the admin's answer names nobody either (images, counts, Orthanc metadata)

    def __str__(self) -> str:
        return f"{self.method} {self.path}" + (f" {self.body[:160]}" if self.body else "")


PATIENT_READS = ("", "/studies", "/series", "/instances", "/archive", "/media", "/module", "/shared-tags")
STUDY_READS = ("", "/series", "/instances", "/patient", "/shared-tags", "/module", "/module-patient", "/archive",
               "/media")
SERIES_READS = ("", "/instances", "/study", "/patient", "/shared-tags", "/module", "/archive", "/media")
INSTANCE_READS = ("", "/file", "/tags", "/simplified-tags", "/header", "/content/0010-0010", "/study", "/series",
                  "/patient", "/module")
# Answers that name nobody even for the admin; still refused to the doctor.
OPAQUE_READS = ("/statistics", "/metadata", "/metadata?expand", "/attachments")
IMAGE_READS = ("/preview", "/rendered", "/image-uint8", "/image-uint16", "/frames", "/frames/0/raw",
               "/frames/0/preview", "/frames/0/rendered")


def probes_aimed_at(other: PatientData, mine: dict[str, str], has_pixels: bool) -> list[Probe]:
    probes = [Probe("read", "GET", f"/patients/{other.oid}{sub}") for sub in PATIENT_READS]
    probes += [Probe("read", "GET", f"/patients/{other.oid}{sub}", opaque=True) for sub in OPAQUE_READS]
    for study in other.studies:
        probes += [Probe("read", "GET", f"/studies/{study.oid}{sub}") for sub in STUDY_READS]
        probes += [Probe("read", "GET", f"/studies/{study.oid}{sub}", opaque=True) for sub in OPAQUE_READS]
        probes += [Probe("read", "GET", f"/dicom-web/studies/{study.uid}{sub}")
                   for sub in ("", "/metadata", "/series")]
        if has_pixels:
            probes.append(Probe("read", "GET", f"/dicom-web/studies/{study.uid}/rendered", opaque=True))
    for series in other.series:
        probes += [Probe("read", "GET", f"/series/{series.oid}{sub}") for sub in SERIES_READS]
        probes += [Probe("read", "GET", f"/series/{series.oid}{sub}", opaque=True) for sub in OPAQUE_READS]
        base = f"/dicom-web/studies/{series.study_uid}/series/{series.uid}"
        probes += [Probe("read", "GET", base + sub) for sub in ("", "/metadata", "/instances")]
        instances = other.instances_of(series)
        # Every instance's file; one instance per series by every other route.
        probes += [Probe("read", "GET", f"/instances/{i.oid}/file") for i in instances[1:]]
        sample = instances[0]
        probes += [Probe("read", "GET", f"/instances/{sample.oid}{sub}") for sub in INSTANCE_READS]
        probes += [Probe("read", "GET", f"/instances/{sample.oid}{sub}", opaque=True) for sub in OPAQUE_READS]
        probes += [Probe("read", "GET", f"{base}/instances/{sample.uid}{sub}") for sub in ("", "/metadata")]
        probes.append(Probe("read", "GET", wado(series.study_uid, series.uid, sample.uid)))
        if has_pixels:
            probes += [Probe("read", "GET", f"/instances/{sample.oid}{sub}", opaque=True) for sub in IMAGE_READS]
            probes += [Probe("read", "GET", f"{base}/instances/{sample.uid}{sub}", opaque=True)
                       for sub in ("/rendered", "/frames/1")]
            probes.append(Probe("read", "GET", wado(series.study_uid, series.uid, sample.uid, "image/jpeg"),
                                opaque=True))
        # A granted study or series in the path, theirs after it.
        granted = f"/dicom-web/studies/{mine['study_uid']}"
        probes += [Probe("mixed", "GET", f"{granted}/series/{series.uid}{sub}")
                   for sub in ("", "/metadata", f"/instances/{sample.uid}", f"/instances/{sample.uid}/metadata",
                               f"/instances/{sample.uid}/rendered", f"/instances/{sample.uid}/frames/1")]
        probes.append(Probe("empty", "GET", f"{granted}/series/{series.uid}/instances"))
        probes += [Probe("mixed", "GET", wado(mine["study_uid"], mine["series_uid"], sample.uid)),
                   Probe("mixed", "GET", wado(mine["study_uid"], series.uid, sample.uid)),
                   Probe("mixed", "GET", wado(mine["study_uid"], mine["series_uid"], sample.uid, "image/jpeg"))]
        # The same argument twice: whichever the gate reads, the DICOMweb plugin must read too.
        twice = f"/wado?requestType=WADO&studyUID={mine['study_uid']}&seriesUID={mine['series_uid']}"
        probes += [Probe("any", "GET", f"{twice}&objectUID={first}&objectUID={second}&contentType=application/dicom")
                   for first, second in ((mine["sop_uid"], sample.uid), (sample.uid, mine["sop_uid"]))]
        # Paths that reach theirs through a granted resource, or spelt another way.
        probes += [Probe("mixed", "GET", path) for path in (
            f"/instances/{mine['instance']}/../../instances/{sample.oid}/file",
            f"/instances/{mine['instance']}/..%2F..%2Finstances/{sample.oid}/file",
            f"/studies/{mine['study']}/../{series.oid}",
            f"/dicom-web/studies/{mine['study_uid']}/../{series.study_uid}/metadata",
            f"//instances/{sample.oid}/file", f"/instances/{sample.oid}/file/", f"/Instances/{sample.oid}/file",
            f"/instances/{sample.oid}/file?_method=GET")]
    # Archives naming a granted resource and one of theirs.
    for theirs in (other.oid, other.studies[0].oid, other.series[0].oid, other.instances[0].oid):
        probes += [Probe("mixed", "POST", "/tools/create-archive", json.dumps([mine["study"], theirs])),
                   Probe("mixed", "POST", "/tools/create-archive", json.dumps({"Resources": [theirs, mine["study"]]})),
                   Probe("mixed", "POST", "/tools/create-media", json.dumps([mine["study"], theirs])),
                   Probe("read", "POST", "/tools/create-archive", json.dumps([theirs]))]
    # Lookups of everything that names them.
    probes += [Probe("empty", "POST", "/tools/lookup", uid)
               for uid in (other.patient_id, *(r.uid for r in (*other.studies, *other.series, *other.instances)))]
    # Searches for them by every spelling of the tag, at every level.
    study_uid, sop_uid, series_uid = other.studies[0].uid, other.instances[0].uid, other.series[0].uid
    for key in ("StudyInstanceUID", "0020,000d", "0020000D", "(0020,000D)", "studyinstanceuid"):
        probes += [Probe("empty", "POST", "/tools/find", find(level, {key: study_uid}))
                   for level in ("Study", "Series", "Instance")]
    both = f"{mine['study_uid']}\\{study_uid}"
    probes += [Probe("list", "POST", "/tools/find", find("Study", {"StudyInstanceUID": both})),
               Probe("empty", "POST", "/tools/find", find("Series", {"SeriesInstanceUID": series_uid})),
               Probe("empty", "POST", "/tools/find", find("Instance", {"SOPInstanceUID": sop_uid})),
               Probe("empty", "POST", "/tools/find", find("Study", {"PatientID": other.patient_id})),
               Probe("empty", "POST", "/tools/find", find("Study", {"PatientName": other.name})),
               Probe("empty", "POST", "/tools/find", find("Patient", {"PatientID": other.patient_id})),
               Probe("empty", "POST", "/tools/find", find("Patient", {"0010,0020": other.patient_id})),
               Probe("empty", "POST", "/tools/find", find("Patient", {"00100020": other.patient_id})),
               Probe("empty", "POST", "/tools/find", find("Patient", {"PatientName": other.name})),
               Probe("empty", "POST", "/tools/count-resources", find("Study", {"PatientID": other.patient_id}))]
    # QIDO naming them: refused or empty.
    probes += [Probe("empty", "GET", path) for path in (
        f"/dicom-web/studies?PatientID={other.patient_id}",
        f"/dicom-web/studies?00100020={other.patient_id}",
        f"/dicom-web/studies?StudyInstanceUID={study_uid}",
        f"/dicom-web/series?StudyInstanceUID={study_uid}",
        f"/dicom-web/instances?StudyInstanceUID={study_uid}",
        f"/dicom-web/series?SeriesInstanceUID={series_uid}",
        f"/dicom-web/instances?SOPInstanceUID={sop_uid}",
        f"/dicom-web/studies?PatientName={other.name}",
    )]
    # QIDO naming a granted study or patient and them too, under another spelling of the key or
    # the same key twice (the DICOMweb plugin keeps the last value of a tag): refused, or nothing
    # but the granted patient. Letting these searches through on the first key the gate finds
    # (services/access.py _exact_values) would leak: seen with 'dicomweb_search' allowed.
    probes += [Probe("list", "GET", path) for path in (
        f"/dicom-web/studies?StudyInstanceUID={mine['study_uid']},{study_uid}",
        f"/dicom-web/studies?StudyInstanceUID={mine['study_uid']}&StudyInstanceUID={study_uid}",
        f"/dicom-web/studies?PatientID={GRANTED}&PatientID={other.patient_id}",
        f"/dicom-web/studies?PatientID={GRANTED}&patientid={other.patient_id}",
        f"/dicom-web/studies?PatientID={GRANTED}&PatientName={other.name}",
        f"/dicom-web/studies?StudyInstanceUID={mine['study_uid']}&PatientID={other.patient_id}",
        f"/dicom-web/studies?StudyInstanceUID={mine['study_uid']}%5C{study_uid}",
        f"/dicom-web/studies?StudyInstanceUID={mine['study_uid']}&0020000D={study_uid}",
        f"/dicom-web/studies?0020000D={study_uid}&StudyInstanceUID={mine['study_uid']}",
        f"/dicom-web/studies?StudyInstanceUID={mine['study_uid']}&0020,000D={study_uid}",
        f"/dicom-web/series?StudyInstanceUID={mine['study_uid']}&0020000D={study_uid}",
        f"/dicom-web/instances?StudyInstanceUID={mine['study_uid']}&0020000D={study_uid}",
        f"/dicom-web/studies?PatientID={GRANTED}&00100020={other.patient_id}",
        f"/dicom-web/studies?PatientID={GRANTED}&0010,0020={other.patient_id}",
        f"/dicom-web/studies?00100020={other.patient_id}&PatientID={GRANTED}",
        f"/dicom-web/studies?PatientID={GRANTED}%5C{other.patient_id}",
        f"/dicom-web/studies?PatientID={GRANTED},{other.patient_id}",
        f"/dicom-web/series?PatientID={GRANTED}&00100020={other.patient_id}",
        f"/dicom-web/instances?PatientID={GRANTED}&00100020={other.patient_id}",
    )]
    return probes


# Lists and searches over everything: refused, or trimmed to the granted patient.
LIST_PROBES = [Probe("list", "GET", path) for path in (
    "/patients", "/patients?expand", "/studies", "/studies?expand", "/series?expand", "/instances?expand",
    "/studies?expand&since=0&limit=1000", "/statistics", "/changes", "/changes?since=0&limit=1000", "/exports",
    "/dicom-web/studies", "/dicom-web/series", "/dicom-web/instances",
    "/dicom-web/studies?PatientID=*", "/dicom-web/studies?PatientName=*", "/dicom-web/studies?StudyInstanceUID=*",
    "/dicom-web/studies?PatientID=9*", "/dicom-web/studies?PatientID=1*", "/dicom-web/studies?limit=1000",
    "/dicom-web/studies?fuzzymatching=true&PatientName=Doe",
    f"/dicom-web/studies?PatientID={GRANTED}&StudyDate=19000101-",
)] + [Probe("list", "POST", "/tools/find", find(level, query))
      for level in ("Patient", "Study", "Series", "Instance")
      for query in ({}, {"PatientID": "*"}, {"PatientName": "*"}, {"00100020": "*"}, {"0010,0020": "*"},
                    # Orthanc refuses study tags in a patient-level search
                    *(({"StudyInstanceUID": "*"}, {"0020,000d": "*"}, {"PatientID": "*", "StudyInstanceUID": ""})
                      if level != "Patient" else ()))
      ] + [Probe("list", "POST", "/tools/find", find(level, query, CaseSensitive=False))
           for level in ("Patient", "Study") for query in ({}, {"PatientName": "doe*"}, {"PatientID": "*"})
      ] + [Probe("list", "POST", "/tools/find", find("Patient", {"PatientID": "*"}, Limit=1000)),
           Probe("list", "POST", "/tools/find", find("Study", {}, Since=0, Limit=1000)),
           Probe("list", "POST", "/tools/count-resources", find("Study", {}))]


def _acceptable(probe: Probe, answer: requests.Response, granted_oids: set[str]) -> bool:
    """A denial, or for searches an answer holding nothing beyond the granted patient."""
    if answer.status_code in DENIED:
        return True
    if probe.kind == "any":
        return True
    if probe.kind in ("read", "mixed") or answer.status_code != 200:
        return False
    try:
        data = answer.json()
    except ValueError:
        return False
    if isinstance(data, dict):  # statistics, count-resources: counts only
        return probe.kind == "list" or data.get("Count") == 0
    if not isinstance(data, list):
        return False
    if probe.kind == "empty":
        return data == []
    ids = [item if isinstance(item, str) else item.get("ID") for item in data]
    # Orthanc resources (ids or expanded) must all be the granted patient's; QIDO's DICOM JSON
    # carries no Orthanc id and is judged by the leak detector alone.
    return all(i in granted_oids for i in ids if i is not None)


@pytest.mark.parametrize("patient_id", OTHERS)
def test_nothing_of_the_other_patients_reaches_the_doctor(doctor: Caller, sample_set, mine, leaks, patient_id):
    granted_oids = sample_set[GRANTED].oids
    problems = []
    probes = probes_aimed_at(sample_set[patient_id], mine, has_pixels=patient_id == "98890234")
    for probe in probes + LIST_PROBES:
        answer = doctor(probe.method, probe.path, data=probe.body)
        leaked = leaks.found_in(answer.content)
        if leaked:
            problems.append(f"{probe} -> {answer.status_code}, leaks {leaked[:5]}")
        elif not _acceptable(probe, answer, granted_oids):
            problems.append(f"{probe} -> {answer.status_code} {answer.content[:120]!r}")
    assert not problems, f"{len(problems)} of {len(probes) + len(LIST_PROBES)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("patient_id", OTHERS)
def test_the_probes_reach_data_when_the_admin_sends_them(gate: Server, sample_set, mine, leaks, patient_id):
    """The control for the test above: each request aimed at them is a real way to their data."""
    probes = probes_aimed_at(sample_set[patient_id], mine, has_pixels=patient_id == "98890234")
    problems = []
    for probe in (p for p in probes if p.kind == "read"):
        answer = gate.admin(probe.method, probe.path, data=probe.body)
        if answer.status_code != 200 or not (probe.opaque or leaks.found_in(answer.content)):
            problems.append(f"{probe} -> {answer.status_code}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def study_only(gate: Server, sample_set) -> tuple[Caller, PatientData]:
    """A doctor holding download on one study of Doe^Peter (who has four) and nothing else."""
    reader = new_doctor(gate, "drstudyonly")
    peter = sample_set[OTHERS[0]]
    grant(gate, reader.username, "download", study_uid=peter.studies[0].uid)
    return reader, peter


def test_a_study_grant_opens_that_study_and_no_other_of_the_patient(study_only):
    reader, peter = study_only
    granted, siblings = peter.studies[0], peter.studies[1:]
    series = peter.series_of(granted)[0]
    instance = peter.instances_of(series)[0]
    for path in (f"/studies/{granted.oid}", f"/studies/{granted.oid}/archive", f"/series/{series.oid}",
                 f"/series/{series.oid}/study", f"/instances/{instance.oid}/study",
                 f"/instances/{instance.oid}/file", f"/dicom-web/studies/{granted.uid}/metadata",
                 f"/dicom-web/studies?StudyInstanceUID={granted.uid}",
                 f"/dicom-web/series?StudyInstanceUID={granted.uid}",
                 wado(granted.uid, series.uid, instance.uid)):
        assert reader("GET", path).status_code == 200, path
    # The patient itself (Orthanc Explorer's study page asks for it) lists only the granted study.
    patient = reader("GET", f"/patients/{peter.oid}")
    assert patient.status_code == 200 and patient.json()["Studies"] == [granted.oid]
    assert not any(s.oid in patient.text for s in siblings)
    # The patient's other resources list or hold every study of the patient: they need a grant on the patient.
    for path in (f"/patients/{peter.oid}/studies", f"/patients/{peter.oid}/archive",
                 f"/studies/{granted.oid}/patient", f"/series/{series.oid}/patient",
                 f"/instances/{instance.oid}/patient",
                 *(f"/studies/{s.oid}" for s in siblings),
                 *(f"/dicom-web/studies/{s.uid}/metadata" for s in siblings)):
        assert reader("GET", path).status_code == 403, path
    # Searches naming the patient, or the granted study with its siblings: answered with the
    # granted study alone.
    for path in (f"/dicom-web/studies?PatientID={peter.patient_id}",
                 *(f"/dicom-web/studies?StudyInstanceUID={granted.uid},{s.uid}" for s in siblings)):
        answer = reader("GET", path)
        assert answer.status_code == 200 and qido_values(answer, "0020000D") == {granted.uid}, path
    assert {s["ID"] for s in reader("GET", "/studies?expand").json()} == {granted.oid}
    assert reader("GET", "/patients").json() == []
    assert reader("POST", "/tools/find", data=find("Patient")).json() == []
    assert reader("POST", "/tools/lookup", data=peter.patient_id).json() == []
    found = reader("POST", "/tools/find", data=find("Study", {"PatientID": peter.patient_id})).json()
    assert [s["ID"] for s in found] == [granted.oid]


def test_a_study_grant_shows_nothing_of_the_patients_other_studies(study_only):
    reader, peter = study_only
    granted = peter.studies[0]
    siblings = LeakDetector([identifier for study in peter.studies[1:] for identifier in (
        study.oid, study.uid, *(r for s in peter.series_of(study) for r in (s.oid, s.uid)),
        *(r for s in peter.series_of(study) for i in peter.instances_of(s) for r in (i.oid, i.uid)))])
    series = peter.series_of(granted)[0]
    instance = peter.instances_of(series)[0]
    problems = []
    for path in (f"/studies/{granted.oid}", f"/studies/{granted.oid}/patient", f"/studies/{granted.oid}/module-patient",
                 f"/series/{series.oid}/patient", f"/instances/{instance.oid}/patient", "/patients?expand",
                 "/studies?expand", f"/dicom-web/studies/{granted.uid}/metadata", "/statistics"):
        answer = reader("GET", path)
        if siblings.found_in(answer.content):
            problems.append(f"GET {path} -> {answer.status_code}, leaks {siblings.found_in(answer.content)}")
    assert not problems, "\n".join(problems)


@dataclass(frozen=True)
class CaseTwins:
    """A server of its own holding two patients whose PatientIDs differ only in case."""

    srv: Server
    oids: dict[str, str]  # PatientID -> Orthanc patient id
    study_uids: dict[str, str]  # PatientID -> StudyInstanceUID


@pytest.fixture(scope="module")
def case_twins(tmp_path_factory: pytest.TempPathFactory):
    """PatientIDs differing only in case are different people (and different Orthanc patients);
    this needs two such patients, so it runs on a server of its own, not on the DICOMDIR set."""
    srv = start_gate(tmp_path_factory.mktemp("gate-case"))
    try:
        source = dicomdir_files()[-1]
        oids, study_uids = {}, {}
        for patient_id, name in (("gate-case-1", "Lower^Case"), ("GATE-CASE-1", "Upper^Case")):
            study_uids[patient_id], (dicom,) = copied_study([source], PatientID=patient_id, PatientName=name)
            answer = srv.admin("POST", "/instances", data=dicom)
            assert answer.status_code == 200
            oids[patient_id] = answer.json()["ParentPatient"]
        assert oids["gate-case-1"] != oids["GATE-CASE-1"]
        yield CaseTwins(srv, oids, study_uids)
    finally:
        srv.proc.stop()


def test_a_patient_grant_does_not_reach_a_patient_whose_id_differs_in_case(case_twins: CaseTwins):
    srv, oids = case_twins.srv, case_twins.oids
    grant(srv, DOCTOR, "view_only", patient_id="gate-case-1")
    doctor = Caller(srv, DOCTOR, DOCTOR_PASSWORD)
    other = LeakDetector(["GATE-CASE-1", "Upper^Case", oids["GATE-CASE-1"], case_twins.study_uids["GATE-CASE-1"]],
                         ignore_case=False)
    requests_made = [("GET", "/patients", None), ("GET", "/patients?expand", None),
                     ("GET", "/patients?expand&full", None), ("GET", "/patients?expand&short", None),
                     ("GET", "/studies?expand", None), ("GET", "/dicom-web/studies?PatientID=gate-case-1", None),
                     ("GET", "/dicom-web/studies?PatientID=GATE-CASE-1", None),
                     ("GET", "/dicom-web/series?00100020=gate-case-1", None),
                     ("POST", "/tools/lookup", "gate-case-1"), ("POST", "/tools/lookup", "GATE-CASE-1")]
    requests_made += [("POST", "/tools/find", find(level, query, CaseSensitive=case))
                      for level in ("Patient", "Study", "Series", "Instance")
                      for query in ({}, {"PatientID": "gate-case-1"}, {"PatientName": "*case"})
                      for case in (True, False)]
    requests_made += [("POST", "/tools/find", find("Patient", query, expand=expand, ResponseContent=["MainDicomTags"]))
                      for query in ({}, {"PatientID": "GATE-CASE-1"}) for expand in (True, False)]
    problems = []
    for method, path, body in requests_made:
        answer = doctor(method, path, data=body)
        if other.found_in(answer.content):
            problems.append(f"{method} {path} {body or ''} -> {answer.status_code}, "
                            f"leaks {other.found_in(answer.content)}")
    statistics = doctor("GET", "/statistics").json()
    if statistics["CountPatients"] != 1:
        problems.append(f"GET /statistics -> {statistics}")
    assert not problems, "\n".join(problems)
    # What is left of the patient granted: their own patient resource and study.
    assert doctor("GET", "/patients").json() == [oids["gate-case-1"]]
    assert doctor("GET", f"/patients/{oids['gate-case-1']}").status_code == 200
    assert doctor("GET", f"/patients/{oids['GATE-CASE-1']}").status_code == 403
    found = doctor("POST", "/tools/find", data=find("Patient", {"PatientID": "gate-case-1"}, expand=False)).json()
    assert found == [oids["gate-case-1"]]


def test_a_qido_search_by_a_patient_id_another_differs_from_by_case_is_refused(case_twins: CaseTwins):
    """The DICOMweb plugin matches PatientID without regard to case (the control: the admin gets both
    patients' studies), and the gate cannot trim its answer: a doctor is refused the search even when
    granted both patients, and searches by StudyInstanceUID instead."""
    srv = case_twins.srv
    reader = new_doctor(srv, "drbothcases")
    for patient_id in case_twins.oids:
        grant(srv, reader.username, "view_only", patient_id=patient_id)
    admin = srv.admin("GET", "/dicom-web/studies?PatientID=gate-case-1")
    assert admin.status_code == 200 and qido_values(admin, "0020000D") == set(case_twins.study_uids.values())
    for key in ("PatientID", "00100020", "0010,0020"):
        for value in ("gate-case-1", "GATE-CASE-1", "Gate-Case-1"):
            answer = reader("GET", f"/dicom-web/studies?{key}={value}")
            # Both are the doctor's: the plugin's answer, over their studies.
            assert answer.status_code == 200, (key, value)
            assert qido_values(answer, "0020000D") == set(case_twins.study_uids.values()), (key, value)
    one = new_doctor(srv, "droncase")  # a doctor of one twin gets that twin alone
    grant(srv, one.username, "view_only", patient_id="gate-case-1")
    answer = one("GET", "/dicom-web/studies?PatientID=GATE-CASE-1")
    assert answer.status_code == 200
    assert qido_values(answer, "0020000D") == {case_twins.study_uids["gate-case-1"]}
    uid = case_twins.study_uids["gate-case-1"]
    answer = reader("GET", f"/dicom-web/studies?StudyInstanceUID={uid}")
    assert answer.status_code == 200 and qido_values(answer, "0020000D") == {uid}


def test_a_bulk_grant_by_patient_id_does_not_grant_a_patient_whose_id_differs_in_case(case_twins: CaseTwins):
    srv = case_twins.srv
    new_doctor(srv, "drbulkcase")
    made = srv.admin("POST", "/gate/api/grants/bulk", json={"user": "drbulkcase", "level": "view_only",
                                                            "query": {"PatientID": "gate-case-1"}})
    assert made.status_code == 201, made.text
    assert [g["study_uid"] for g in made.json()["grants"]] == [case_twins.study_uids["gate-case-1"]]


# -- 3. no change to the other patients goes through ---------------------------------------------

def snapshot(gate: Server, patient_id: str) -> dict[str, Any]:
    """What could change: the resources and their main tags, metadata, attachments, protection,
    and the server's counts (modify and anonymize create new resources)."""
    patient = catalog(gate)[patient_id]

    def stable(data: Any) -> Any:
        return {k: v for k, v in data.items() if k not in VOLATILE} if isinstance(data, dict) else data

    state: dict[str, Any] = {"catalog": patient, "counts": {k: v for k, v in gate.admin("GET", "/statistics").json()
                                                            .items() if k.startswith("Count")}}
    state["patient"] = stable(gate.admin("GET", f"/patients/{patient.oid}").json())
    state["protected"] = gate.admin("GET", f"/patients/{patient.oid}/protected").text
    for resource, plural in ((*((s, "studies") for s in patient.studies), *((s, "series") for s in patient.series),
                              (patient.instances[0], "instances"))):
        state[resource.oid] = stable(gate.admin("GET", f"/{plural}/{resource.oid}").json())
        metadata = gate.admin("GET", f"/{plural}/{resource.oid}/metadata?expand").json()
        state[f"{resource.oid}/metadata"] = {k: v for k, v in metadata.items() if k not in VOLATILE}
        state[f"{resource.oid}/attachments"] = gate.admin("GET", f"/{plural}/{resource.oid}/attachments").json()
    return state


def stow_body(dicom: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = "gate-test-boundary"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode() + dicom + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}


@pytest.mark.parametrize("patient_id", OTHERS)
def test_no_change_to_the_other_patients_goes_through(gate: Server, doctor: Caller, sample_set, mine, patient_id):
    other = sample_set[patient_id]
    study, series, instance = other.studies[0], other.series[0], other.instances[0]
    before = snapshot(gate, patient_id)
    source = next(p for p in files_of_patient(dicomdir_files(), patient_id))
    study_copy_uid, (new_instance,) = copied_study([source])
    replace = json.dumps({"Replace": {"PatientName": "Changed^Name"}, "Force": True})
    changes: list[tuple[str, str, Any, dict[str, str]]] = [
        ("DELETE", f"/studies/{study.oid}", None, {}),
        ("DELETE", f"/patients/{other.oid}", None, {}),
        ("DELETE", f"/series/{series.oid}", None, {}),
        ("DELETE", f"/instances/{instance.oid}", None, {}),
        ("POST", f"/studies/{study.oid}", None, {"X-HTTP-Method-Override": "DELETE"}),
        ("GET", f"/studies/{study.oid}?_method=DELETE", None, {}),
        ("POST", f"/studies/{study.oid}/modify", replace, {}),
        ("POST", f"/patients/{other.oid}/modify", json.dumps({"Replace": {"PatientID": "CHANGED"}, "Force": True}), {}),
        ("POST", f"/series/{series.oid}/modify", replace, {}),
        ("POST", f"/instances/{instance.oid}/modify", replace, {}),
        ("POST", f"/studies/{study.oid}/anonymize", "{}", {}),
        ("POST", f"/patients/{other.oid}/anonymize", "{}", {}),
        ("POST", f"/series/{series.oid}/anonymize", "{}", {}),
        ("POST", f"/instances/{instance.oid}/anonymize", "{}", {}),
        ("POST", f"/studies/{study.oid}/merge", json.dumps({"Resources": [mine["series"]]}), {}),
        ("POST", f"/studies/{study.oid}/split", json.dumps({"Series": [series.oid]}), {}),
        ("PUT", f"/studies/{study.oid}/metadata/1024", "written by a doctor with no grant", {}),
        ("PUT", f"/studies/{study.oid}/metadata/GateNote", "written by a doctor with no grant", {}),
        ("PUT", f"/instances/{instance.oid}/metadata/1024", "written by a doctor with no grant", {}),
        ("PUT", f"/studies/{study.oid}/labels/x", "", {}),
        ("PUT", f"/instances/{instance.oid}/attachments/1025", "attached by a doctor with no grant", {}),
        ("PUT", f"/studies/{study.oid}/attachments/1025", "attached by a doctor with no grant", {}),
        ("DELETE", f"/instances/{instance.oid}/attachments/dicom", None, {}),
        ("PUT", f"/patients/{other.oid}/protected", "1", {}),
        ("POST", "/tools/bulk-delete", json.dumps({"Resources": [study.oid]}), {}),
        ("POST", "/tools/bulk-delete", json.dumps({"Resources": [instance.oid, series.oid]}), {}),
        ("POST", "/tools/bulk-modify", json.dumps({"Resources": [study.oid], "Level": "Study",
                                                   "Replace": {"StudyDescription": "changed"}, "Force": True}), {}),
        ("POST", "/tools/bulk-anonymize", json.dumps({"Resources": [study.oid]}), {}),
        ("POST", f"/dicom-web/studies/{study.uid}", *stow_body(new_instance)),
        ("POST", "/dicom-web/studies", *stow_body(new_instance)),
        ("POST", "/instances", new_instance, {}),
        ("POST", "/tools/execute-script", f'Delete("{study.oid}")', {}),
    ]
    problems = []
    for method, path, body, headers in changes:
        answer = doctor(method, path, data=body, headers=headers)
        if 200 <= answer.status_code < 300:
            problems.append(f"{method} {path} -> {answer.status_code}")
    assert not problems, "\n".join(problems)
    assert snapshot(gate, patient_id) == before
    assert gate.admin("POST", "/tools/lookup", data=study_copy_uid).json() == []


# -- 4. what each level allows -------------------------------------------------------------------

def test_view_only_shows_images_and_tags_but_hands_out_no_dicom(gate: Server, sample_set, mine):
    viewer = new_doctor(gate, "drviewer")
    grant(gate, viewer.username, "view_only", patient_id=GRANTED)
    views = ["/instances/{instance}/preview", "/instances/{instance}/rendered", "/instances/{instance}/tags",
             "/instances/{instance}/simplified-tags", "/instances/{instance}/frames/0/preview",
             "/studies/{study}", "/series/{series}/instances",
             "/dicom-web/studies/{study_uid}/metadata",
             "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/rendered",
             wado("{study_uid}", "{series_uid}", "{sop_uid}", "image/jpeg")]
    downloads = ["/instances/{instance}/file", "/studies/{study}/archive", "/series/{series}/archive",
                 "/patients/{patient}/archive", "/studies/{study}/media",
                 wado("{study_uid}", "{series_uid}", "{sop_uid}"),
                 "/dicom-web/studies/{study_uid}", "/dicom-web/studies/{study_uid}/series/{series_uid}",
                 "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"]
    for path in views:
        answer = viewer("GET", path.format(**mine))
        assert answer.status_code == 200, (path, answer.status_code)
    for path in downloads:
        answer = viewer("GET", path.format(**mine))
        assert answer.status_code == 403, (path, answer.status_code)
        assert mine["sop_uid"] not in answer.text
    archive = viewer("POST", "/tools/create-archive", data=json.dumps([mine["study"]]))
    assert archive.status_code == 403


def test_download_cannot_annotate(gate: Server, doctor: Caller, mine):
    answer = doctor("PUT", f"/studies/{mine['study']}/metadata/1024", data="a note")
    assert answer.status_code == 403
    assert gate.admin("GET", f"/studies/{mine['study']}/metadata/1024").status_code == 404
    assert doctor("PUT", f"/instances/{mine['instance']}/attachments/1025", data="a report").status_code == 403


def test_annotate_writes_metadata_but_cannot_delete_the_study(gate: Server, mine):
    annotator = new_doctor(gate, "drannotator")
    grant(gate, annotator.username, "annotate", patient_id=GRANTED)
    study = mine["study"]
    assert annotator("PUT", f"/studies/{study}/metadata/1024", data="reviewed").status_code == 200
    assert gate.admin("GET", f"/studies/{study}/metadata/1024").text == "reviewed"
    assert annotator("PUT", f"/studies/{study}/metadata/GateNote", data="seen").status_code == 200
    assert annotator("GET", f"/studies/{study}/metadata/GateNote").text == "seen"
    assert annotator("DELETE", f"/studies/{study}").status_code == 403
    assert annotator("POST", f"/studies/{study}/modify", data=json.dumps({"Replace": {"StudyDescription": "x"}})
                     ).status_code == 403
    assert annotator("PUT", f"/instances/{mine['instance']}/attachments/1025", data="report").status_code == 403
    assert gate.admin("GET", f"/studies/{study}").status_code == 200
    assert annotator("DELETE", f"/studies/{study}/metadata/1024").status_code == 200
    assert gate.admin("GET", f"/studies/{study}/metadata/1024").status_code == 404


def push_copy(gate: Server, patient_id: str) -> tuple[str, str, list[str]]:
    """A new study of `patient_id` (copies of some of their images), uploaded by the admin:
    (StudyInstanceUID, Orthanc study id, Orthanc instance ids)."""
    study_uid, copies = copied_study(files_of_patient(dicomdir_files(), patient_id)[:3])
    instances = []
    for dicom in copies:
        answer = gate.admin("POST", "/instances", data=dicom)
        assert answer.status_code == 200, answer.text
        instances.append(answer.json()["ID"])
    study = gate.admin("GET", f"/instances/{instances[0]}/study").json()["ID"]
    return study_uid, study, instances


def test_full_deletes_a_study_of_the_patient(gate: Server, doctor: Caller):
    study_uid, study, _ = push_copy(gate, GRANTED)
    assert doctor("DELETE", f"/studies/{study}").status_code == 403  # download is not enough
    surgeon = new_doctor(gate, "drfull")
    grant(gate, surgeon.username, "full", patient_id=GRANTED)
    assert surgeon("DELETE", f"/studies/{study}").status_code == 200
    assert gate.admin("GET", f"/studies/{study}").status_code == 404
    assert gate.admin("POST", "/tools/lookup", data=study_uid).json() == []


# -- 5. revocation acts at once, whatever the credentials ------------------------------------------

def _warm_then_revoke(gate: Server, call, path: str, grant_id: int) -> requests.Response:
    for _ in range(20):  # the same URL with the same credentials: the remembered decision is warm
        assert call(path).status_code == 200
    revoke(gate, grant_id)
    return call(path)


def test_revocation_denies_the_very_next_read(gate: Server, mine):
    reader = new_doctor(gate, "drrevoked")
    key = gate.proc.create_api_key("revocation test", reader.username)
    path = f"/instances/{mine['instance']}/file"

    basic = grant(gate, reader.username, "download", patient_id=GRANTED)
    after = _warm_then_revoke(gate, lambda p: reader("GET", p), path, basic["id"])
    assert after.status_code == 403

    bearer = grant(gate, reader.username, "download", patient_id=GRANTED)
    after = _warm_then_revoke(gate, lambda p: requests.get(gate.url(p), headers={"Authorization": f"Bearer {key}"},
                                                           timeout=10), path, bearer["id"])
    assert after.status_code == 403

    session = reader.signed_in()
    cookie = grant(gate, reader.username, "download", patient_id=GRANTED)
    after = _warm_then_revoke(gate, lambda p: session.get(gate.url(p), timeout=10), path, cookie["id"])
    assert after.status_code == 403
    assert session.get(gate.url("/studies"), timeout=10).json() == []
    assert session.get(gate.url(f"/studies/{mine['study']}"), timeout=10).status_code == 403


def test_revoking_a_study_grant_leaves_a_patient_grant_working(gate: Server, mine):
    reader = new_doctor(gate, "drtwogrants")
    on_study = grant(gate, reader.username, "download", study_uid=mine["study_uid"])
    grant(gate, reader.username, "view_only", patient_id=GRANTED)
    path = f"/instances/{mine['instance']}/file"
    after = _warm_then_revoke(gate, lambda p: reader("GET", p), path, on_study["id"])
    assert after.status_code == 403  # view_only remains: no download
    assert reader("GET", f"/instances/{mine['instance']}/preview").status_code == 200


# -- 6. expiry needs no revocation ---------------------------------------------------------------

def test_a_grant_stops_working_when_it_expires(gate: Server, mine):
    reader = new_doctor(gate, "drexpiring")
    expires = datetime.now(UTC) + timedelta(seconds=2)
    grant(gate, reader.username, "download", patient_id=GRANTED, expires_at=expires.isoformat())
    path = f"/instances/{mine['instance']}/file"
    assert reader("GET", path).status_code == 200
    deadline = time.time() + 5
    while True:
        status = reader("GET", path).status_code  # keeps the remembered decision warm too
        now = time.time()
        if status != 200:
            break
        assert now < deadline, "still allowed 3 s after the grant expired"
        time.sleep(0.05)
    assert status == 403
    assert now >= expires.timestamp() - 0.05, "refused before the grant expired"
    assert now <= expires.timestamp() + 1.5, f"refused only {now - expires.timestamp():.2f} s after expiry"
    assert reader("GET", "/studies").json() == []
    assert reader("GET", f"/studies/{mine['study']}").status_code == 403


# -- 7. a patient grant covers studies stored later ---------------------------------------------

def test_a_patient_grant_covers_a_study_stored_after_it(gate: Server, doctor: Caller, tmp_path):
    files = files_of_patient(dicomdir_files(), GRANTED)[:2]
    study_uid, copies = copied_study(files)
    paths = []
    for number, dicom in enumerate(copies):
        path = tmp_path / f"new-{number}.dcm"
        path.write_bytes(dicom)
        paths.append(path)
    pushed = storescu(gate.proc.dicom_port, paths)
    assert pushed.returncode == 0, pushed.stderr
    study = gate.admin("POST", "/tools/lookup", data=study_uid).json()[0]["ID"]
    instance = gate.admin("GET", f"/studies/{study}/instances").json()[0]["ID"]

    assert study in doctor("GET", "/studies").json()
    found = doctor("POST", "/tools/find", data=find("Study", {"StudyInstanceUID": study_uid})).json()
    assert [s["ID"] for s in found] == [study]
    assert doctor("GET", f"/instances/{instance}/file").content == dicom_of(gate, instance)
    assert doctor("GET", f"/dicom-web/studies/{study_uid}/metadata").status_code == 200


def dicom_of(gate: Server, instance: str) -> bytes:
    answer = gate.admin("GET", f"/instances/{instance}/file")
    assert answer.status_code == 200
    return answer.content


# -- 8. bad grant requests are refused whole, with a JSON error -----------------------------------

def _error(answer: requests.Response, status: int) -> dict:
    assert answer.status_code == status, (answer.status_code, answer.text)
    body = answer.json()
    assert set(body) >= {"error", "message"} and body["message"], body
    return body


@pytest.mark.parametrize(("change", "status", "named"), [
    ({"patient_id": "NO-SUCH-PATIENT-42"}, 404, "NO-SUCH-PATIENT-42"),
    ({"study_uid": "1.2.826.0.1.3680043.99.99.99"}, 404, "1.2.826.0.1.3680043.99.99.99"),
    ({"orthanc_id": "00000000-00000000-00000000-00000000-00000000"}, 404, None),
    ({"level": "owner"}, 400, "Level"),
    ({"level": "Download"}, 400, "Level"),
    ({"expires_at": "next tuesday"}, 400, "next tuesday"),
    ({"expires_at": "2031-01-31T17:00:00"}, 400, "time zone"),
    ({"expires_at": "2001-01-31T17:00:00+02:00"}, 400, "past"),
    ({"user": "nobody-by-this-name"}, 404, "nobody-by-this-name"),
    ({"patient_id": "7765*"}, 400, None),
    ({"surprise": 1}, 400, "surprise"),
], ids=["unknown-patient", "unknown-study", "unknown-orthanc-id", "level-owner", "level-case",
        "expiry-words", "expiry-no-zone", "expiry-past", "unknown-user", "wildcard-patient", "unknown-field"])
def test_bad_grant_requests_are_refused_and_write_nothing(gate: Server, sample_set, change, status, named):
    before = len(active_grants(gate, DOCTOR))
    body = {"user": DOCTOR, "patient_id": GRANTED, "level": "download", **change}
    if "study_uid" in change or "orthanc_id" in change:
        del body["patient_id"]
    error = _error(gate.admin("POST", "/gate/api/grants", json=body), status)
    if named:
        assert named in error["message"]
    assert len(active_grants(gate, DOCTOR)) == before


def test_granting_to_a_disabled_user_is_a_conflict(gate: Server, sample_set):
    new_doctor(gate, "drdisabled")
    gate.proc.gatectl("disable-user", "drdisabled")
    _error(gate.admin("POST", "/gate/api/grants", json={"user": "drdisabled", "patient_id": GRANTED,
                                                        "level": "view_only"}), 409)
    assert active_grants(gate, "drdisabled") == []


def test_a_bulk_grant_with_one_bad_item_writes_nothing(gate: Server, sample_set):
    new_doctor(gate, "drbulk")
    studies = sample_set[GRANTED].studies
    items = [{"study_uid": studies[0].uid}, {"patient_id": "NO-SUCH-PATIENT-43"}, {"study_uid": studies[1].uid}]
    error = _error(gate.admin("POST", "/gate/api/grants/bulk", json={"user": "drbulk", "level": "view_only",
                                                                     "items": items}), 404)
    assert "Item 2" in error["message"] and "NO-SUCH-PATIENT-43" in error["message"]
    _error(gate.admin("POST", "/gate/api/grants/bulk", json={"user": "drbulk", "level": "view_only",
                                                             "items": [items[0], {"study_uid": "*"}]}), 400)
    _error(gate.admin("POST", "/gate/api/grants/bulk", json={"user": "drbulk", "level": "owner",
                                                             "items": [items[0]]}), 400)
    assert active_grants(gate, "drbulk") == []
    # The good items alone go through, and a query names the studies it matched (as they are now:
    # other tests add studies to this patient).
    studies = catalog(gate)[GRANTED].studies
    made = gate.admin("POST", "/gate/api/grants/bulk", json={"user": "drbulk", "level": "view_only",
                                                              "items": [items[0], items[2]]})
    assert made.status_code == 201 and made.json()["created"] == 2
    by_query = gate.admin("POST", "/gate/api/grants/bulk", json={"user": "drbulk", "level": "view_only",
                                                                  "query": {"PatientID": GRANTED}})
    assert by_query.status_code == 201
    assert sorted(g["study_uid"] for g in by_query.json()["grants"]) == sorted(s.uid for s in studies)
    assert len(active_grants(gate, "drbulk")) == 2 + len(studies)


def test_only_admins_grant(gate: Server, doctor: Caller, sample_set):
    body = {"user": DOCTOR, "patient_id": OTHERS[0], "level": "full"}
    before = len(active_grants(gate, DOCTOR))
    assert _error(doctor("POST", "/gate/api/grants", json=body), 403)["error"] == "forbidden"
    _error(doctor("POST", "/gate/api/grants/bulk", json={**{k: v for k, v in body.items() if k != "patient_id"},
                                                         "items": [{"patient_id": OTHERS[0]}]}), 403)
    _error(doctor("GET", f"/gate/api/grants?user={DOCTOR}"), 403)
    anonymous = gate.anonymous("POST", "/gate/api/grants", json=body)
    assert _error(anonymous, 401)["error"] == "unauthenticated"
    _error(gate.anonymous("POST", "/gate/api/grants/bulk", json=body), 401)
    assert len(active_grants(gate, DOCTOR)) == before
    assert doctor("GET", f"/patients/{sample_set[OTHERS[0]].oid}").status_code == 403


def test_a_doctor_may_check_their_own_access_only(gate: Server, doctor: Caller, sample_set, mine):
    own = doctor("GET", f"/gate/api/check?study={mine['study_uid']}&level=download").json()
    assert own["allowed"] is True and own["held"] == "download"
    other = sample_set[OTHERS[0]].studies[0].uid
    assert doctor("GET", f"/gate/api/check?study={other}&level=view_only").json()["allowed"] is False
    _error(doctor("GET", f"/gate/api/check?user=drviewer&study={mine['study_uid']}"), 403)


# -- 9. audit ------------------------------------------------------------------------------------

def test_an_allowed_read_is_audited_with_patient_and_study(gate: Server, doctor: Caller, sample_set):
    # An instance of the second study no other test reads (reads of one resource coalesce).
    patient = sample_set[GRANTED]
    instance = patient.instances_of(patient.series_of(patient.studies[1])[-1])[-1]
    assert doctor("GET", f"/instances/{instance.oid}/file").status_code == 200
    rows = wait_for_audit(gate, "actor=? AND orthanc_id=? AND outcome='allow' AND action='download'",
                          (DOCTOR, instance.oid))
    assert rows, "no audit row for the doctor's read"
    assert rows[-1]["patient_id"] == GRANTED and rows[-1]["study_uid"] == instance.study_uid


def test_a_refused_read_is_audited_with_whose_data_was_asked_for(gate: Server, sample_set):
    # A doctor of its own: the module's doctor has been refused so often by now that its refusals
    # are only counted (docs/audit.md, at most 100 denial rows per caller a minute).
    curious = new_doctor(gate, "drcurious")
    other = sample_set[OTHERS[0]]
    path = f"/studies/{other.studies[0].oid}"
    assert curious("GET", path).status_code == 403
    rows = wait_for_audit(gate, "actor=? AND path=? AND outcome='deny'", (curious.username, path))
    assert rows and rows[-1]["patient_id"] == other.patient_id and rows[-1]["study_uid"] == other.studies[0].uid


def test_grant_changes_are_audited(gate: Server, download_grant):
    rows = wait_for_audit(gate, "route_class='grant' AND action='grant.create' AND actor=? AND patient_id=?",
                          (ADMIN, GRANTED))
    assert any(json.loads(r["detail"])["grants"][0]["id"] == download_grant["id"] for r in rows)
    new_doctor(gate, "draudited")
    temporary = grant(gate, "draudited", "view_only", patient_id=OTHERS[1])
    revoke(gate, temporary["id"])
    rows = wait_for_audit(gate, "route_class='grant' AND action='grant.revoke' AND patient_id=?", (OTHERS[1],))
    assert rows and json.loads(rows[-1]["detail"])["grants"][0]["id"] == temporary["id"]


# -- 10. Limit and Since apply to what the caller may see ----------------------------------------

def test_limit_and_since_count_only_the_callers_own(gate: Server):
    reader = new_doctor(gate, "drlimited")
    made = gate.admin("POST", "/gate/api/grants/bulk", json={
        "user": reader.username, "level": "view_only", "items": [{"patient_id": GRANTED}, {"patient_id": OTHERS[0]}]})
    assert made.status_code == 201, made.text
    now = catalog(gate)
    theirs = {s.oid for pid in (GRANTED, OTHERS[0]) for s in now[pid].studies}
    everyone = {s.oid for p in now.values() for s in p.studies}
    assert everyone - theirs  # Citizen^Jan's study is there, and must not count

    two = reader("POST", "/tools/find", data=find("Study", Limit=2)).json()
    assert len(two) == 2 and {s["ID"] for s in two} <= theirs
    one = reader("GET", "/studies?since=0&limit=1").json()
    assert len(one) == 1 and set(one) <= theirs
    seen = []
    for since in range(len(theirs) + 1):
        seen += reader("GET", f"/studies?since={since}&limit=1").json()
    assert sorted(seen) == sorted(theirs)
    assert set(reader("POST", "/tools/find", data=find("Study", expand=False, Limit=1000)).json()) == theirs


# -- uploads through a grant carry that study's patient ---------------------------------------------

def object_for(source: Path, study_uid: str, patient_id: str) -> tuple[str, bytes]:
    """A new object (new series and instance UIDs) claiming `study_uid` and `patient_id`."""
    dataset = pydicom.dcmread(source)
    dataset.StudyInstanceUID, dataset.PatientID = study_uid, patient_id
    dataset.SeriesInstanceUID, dataset.SOPInstanceUID = generate_uid(), generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return dataset.SOPInstanceUID, buffer.getvalue()


def test_an_upload_into_a_granted_study_must_carry_that_studys_patient(gate: Server, sample_set, mine):
    """STOW-RS at annotate: Orthanc files an object by its own PatientID and StudyInstanceUID, so one
    claiming the granted study but another patient would land in that other patient's record."""
    uploader = new_doctor(gate, "druploader")
    grant(gate, uploader.username, "annotate", study_uid=mine["study_uid"])
    source = files_of_patient(dicomdir_files(), GRANTED)[0]
    other = sample_set[OTHERS[0]]
    refused = [object_for(source, mine["study_uid"], other.patient_id),  # the granted study, another patient
               object_for(source, other.studies[0].uid, other.patient_id),  # another study altogether
               object_for(source, mine["study_uid"], GRANTED.lower() + "x")]
    for sop_uid, dicom in refused:
        answer = uploader("POST", f"/dicom-web/studies/{mine['study_uid']}", data=stow_body(dicom)[0],
                          headers=stow_body(dicom)[1])
        assert gate.admin("POST", "/tools/lookup", data=sop_uid).json() == [], answer.status_code
    expected = {other.patient_id, GRANTED.lower() + "x"}

    def carried(rows: list) -> set[str]:
        return {json.loads(r["detail"])["object"]["PatientID"] for r in rows}
    # Refusals are written after their answers (nobody waits for them): wait for all of them.
    rows = wait_for_audit(gate, "actor=? AND outcome='deny' AND reason LIKE 'upload refused%'", (uploader.username,),
                          until=lambda rows: carried(rows) >= expected)
    assert carried(rows) == expected
    assert catalog(gate)[OTHERS[0]].oids == other.oids  # nothing was added to the other patient
    sop_uid, dicom = object_for(source, mine["study_uid"], GRANTED)
    body, headers = stow_body(dicom)
    assert uploader("POST", f"/dicom-web/studies/{mine['study_uid']}", data=body, headers=headers).status_code == 200
    [found] = gate.admin("POST", "/tools/lookup", data=sop_uid).json()
    assert gate.admin("GET", f"/instances/{found['ID']}/patient").json()["MainDicomTags"]["PatientID"] == GRANTED


def test_an_admins_upload_is_not_looked_at(gate: Server, sample_set, mine):
    source = files_of_patient(dicomdir_files(), GRANTED)[0]
    sop_uid, dicom = object_for(source, mine["study_uid"], "ADMIN-FILED-ELSEWHERE")
    body, headers = stow_body(dicom)
    assert gate.admin("POST", f"/dicom-web/studies/{mine['study_uid']}", data=body, headers=headers).status_code == 200
    assert len(gate.admin("POST", "/tools/lookup", data=sop_uid).json()) == 1

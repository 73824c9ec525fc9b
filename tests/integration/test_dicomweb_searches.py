"""Where the Gate answers the DICOMweb plugin's searches itself (Orthanc before 1.11, DICOMweb 1.7):
a doctor's answers in both formats and under a study, what the audit keeps of them, and what
happens when the DICOMweb plugin was loaded first and kept its routes."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import Server, audit_rows, start_gate, upload_dicomdir, wait_for_audit
from tests.harness import PLUGINS
from tests.integration.grants_support import LeakDetector, catalog, grant, new_doctor

GRANTED, OTHER = "77654033", "98890234"
XML = {"Accept": "application/dicom+xml"}


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory):
    srv = start_gate(tmp_path_factory.mktemp("gate-dicomweb-searches"))
    try:
        upload_dicomdir(srv)
        yield srv
    finally:
        srv.proc.stop()


def test_a_doctors_xml_answer_holds_their_studies_only(gate: Server):
    patients = catalog(gate)
    doctor = new_doctor(gate, "drxml")
    grant(gate, doctor.username, "view_only", patient_id=GRANTED)
    answer = doctor("GET", "/dicom-web/studies", headers=XML)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("multipart/related")
    uids = set(re.findall(r'tag="0020000D" vr="UI" keyword="StudyInstanceUID">\s*<Value number="1">([^<]+)<',
                          answer.text))
    assert uids == {s.uid for s in patients[GRANTED].studies}
    leaks = LeakDetector([i for pid in patients if pid != GRANTED for i in patients[pid].identifiers()])
    assert leaks.found_in(answer.content) == []


def test_under_a_granted_study_the_answer_is_the_admins(gate: Server):
    patients = catalog(gate)
    doctor = new_doctor(gate, "drinstudy")
    study = patients[GRANTED].studies[0]
    grant(gate, doctor.username, "view_only", study_uid=study.uid)
    for path in (f"/dicom-web/studies/{study.uid}/series", f"/dicom-web/studies/{study.uid}/instances"):
        mine, admins = doctor("GET", path), gate.admin("GET", path)
        assert mine.status_code == 200 and mine.content == admins.content, path  # same Host, same data
    other = patients[OTHER].studies[0]
    assert doctor("GET", f"/dicom-web/studies/{other.uid}/series").status_code == 403
    # The study grant does not open the patient's other studies to a search over everything.
    found = doctor("GET", "/dicom-web/studies?PatientID=" + GRANTED).json()
    assert [item["0020000D"]["Value"][0] for item in found] == [study.uid]


def gate_answers_searches(srv: Server) -> bool:
    """Orthanc before 1.11: the Gate answers the searches; later, the plugin through our /tools/find."""
    version = srv.admin("GET", "/system").json()["Version"]
    return tuple(int(part) for part in version.split(".")[:2]) < (1, 11)


def test_the_audit_names_whose_data_the_answer_held(gate: Server):
    doctor = new_doctor(gate, "draudited")
    grant(gate, doctor.username, "view_only", patient_id=GRANTED)
    assert doctor("GET", f"/dicom-web/series?PatientID={OTHER}").json() == []
    assert len(doctor("GET", "/dicom-web/series?PatientName=*").json()) > 0
    # Written by whichever answered: the Gate's search route, or its /tools/find the plugin called.
    family = "dicomweb_search" if gate_answers_searches(gate) else "tools_find"
    rows = wait_for_audit(gate, f"actor='draudited' AND route_class='{family}' AND detail LIKE '%returned%'")
    assert [(json.loads(r["detail"])["returned"] > 0, r["patient_id"]) for r in rows] == [(False, ""),
                                                                                          (True, GRANTED)]


def test_a_viewer_fetching_every_frame_of_a_study_adds_one_search_row(gate: Server):
    """DICOMweb 1.15+ (Orthanc 1.12) locates each WADO-RS resource with /tools/find, asked as the
    caller: the answers are alike, so the Gate's audit of them is one row for the whole study."""
    patients = catalog(gate)
    doctor = new_doctor(gate, "drframes")
    study = patients[GRANTED].studies[0]
    grant(gate, doctor.username, "view_only", study_uid=study.uid)
    accept = {"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}
    frames = [f"/dicom-web/studies/{study.uid}/series/{series.uid}/instances/{instance.uid}/frames/1"
              for series in patients[GRANTED].series_of(study) for instance in patients[GRANTED].instances_of(series)]
    assert len(frames) >= 2
    for _ in range(3):
        for frame in frames:
            assert doctor("GET", frame, headers=accept).status_code == 200, frame
    # Each row is durable before its answer; DICOMweb 1.7 (Orthanc 1.10) asks no /tools/find here.
    rows = audit_rows(gate, "actor='drframes' AND route_class='tools_find'")
    assert [(r["patient_id"], r["count"]) for r in rows] == ([] if gate_answers_searches(gate) else [(GRANTED, 1)])


def test_with_the_dicomweb_plugin_loaded_first_a_doctors_search_stays_refused(tmp_path):
    """Orthanc gives a route to the first plugin that registers it: before Orthanc 1.11 the
    plugin's own searches would then see everything, so the Gate lets no doctor's search over
    everything through. (From 1.11 on the plugin searches through the Gate's /tools/find, and the
    order does not matter.)"""
    srv = start_gate(tmp_path, extra={"Plugins": [f"{PLUGINS}/libOrthancDicomWeb.so",
                                                   f"{PLUGINS}/libOrthancPython.so"]})
    try:
        upload_dicomdir(srv)
        doctor = new_doctor(srv, "drfirst")
        grant(srv, doctor.username, "view_only", patient_id=GRANTED)
        refused = gate_answers_searches(srv)
        assert doctor("GET", "/dicom-web/studies").status_code == (403 if refused else 200)
        assert doctor("GET", f"/dicom-web/studies?PatientID={GRANTED}").status_code == 200
        assert srv.admin("GET", "/dicom-web/studies").status_code == 200
        assert ("list libOrthancPython.so before libOrthancDicomWeb.so" in srv.proc.log_text()) is refused
    finally:
        srv.proc.stop()

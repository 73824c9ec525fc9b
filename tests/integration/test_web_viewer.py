"""The Orthanc Web Viewer (Debian's orthanc-webviewer) behind the gate: a doctor granted one study
opens its series and images through the viewer's own routes; another study's series, images and
frames, named by id, are refused and the audit says why."""

from __future__ import annotations

import pytest

from tests.conftest import Server, wait_for_audit
from tests.integration.grants_support import PatientData, catalog, grant, new_doctor

USER = "drviewer"


@pytest.fixture(scope="module")
def setup(server: Server):
    patients = sorted(catalog(server).values(), key=lambda p: p.patient_id)
    # Two patients whose first image the viewer decodes (some samples use codecs it lacks):
    # A's study is granted, B's is not.
    decodable = [p for p in patients if p.instances and server.admin(
        "GET", f"/web-viewer/instances/jpeg95-{_first_series_and_instance(p)[2].oid}_0").status_code == 200]
    granted, other = decodable[0], decodable[1]
    doctor = new_doctor(server, USER)
    grant(server, USER, "view_only", study_uid=_first_series_and_instance(granted)[0].uid)
    return doctor, granted, other


def _first_series_and_instance(patient: PatientData):
    study = next(s for s in patient.studies if patient.series_of(s))
    series = next(s for s in patient.series_of(study) if patient.instances_of(s))
    return study, series, patient.instances_of(series)[0]


def test_doctor_opens_the_granted_study_in_the_web_viewer(setup):
    doctor, granted, _other = setup
    _study, series, instance = _first_series_and_instance(granted)
    page = doctor("GET", f"/web-viewer/app/viewer.html?series={series.oid}")
    assert page.status_code == 200 and b"Orthanc Web Viewer" in page.content
    assert doctor("GET", "/web-viewer/libs/jquery.js").status_code == 200
    described = doctor("GET", f"/web-viewer/series/{series.oid}")
    assert described.status_code == 200, described.text
    assert instance.oid in described.text
    assert doctor("GET", f"/web-viewer/is-stable-series/{series.oid}").status_code == 200
    for name in (f"jpeg95-{instance.oid}_0", f"deflate-{instance.oid}_0"):
        image = doctor("GET", f"/web-viewer/instances/{name}")
        assert image.status_code == 200, (name, image.status_code)
        assert image.json()["Orthanc"]["PixelData"], name


def test_another_study_is_refused_through_every_web_viewer_route(server: Server, setup):
    doctor, _granted, other = setup
    _study, series, instance = _first_series_and_instance(other)
    for path in (f"/web-viewer/series/{series.oid}", f"/web-viewer/is-stable-series/{series.oid}",
                 f"/web-viewer/instances/jpeg95-{instance.oid}_0", f"/web-viewer/instances/deflate-{instance.oid}_0",
                 f"/web-viewer/instances/jpeg80-{instance.oid}_1"):
        assert doctor("GET", path).status_code == 403, path
        rows = wait_for_audit(server, "actor = ? AND path = ? AND outcome = 'deny'", (USER, path))
        assert rows and rows[0]["reason"] == "no grant for this resource", path
        assert rows[0]["route_class"] == "web_viewer"
        assert rows[0]["patient_id"] == other.patient_id, path  # located: the audit names whose it was


def test_malformed_web_viewer_names_are_refused_and_say_so(server: Server, setup):
    doctor, granted, _other = setup
    _study, series, instance = _first_series_and_instance(granted)
    for path in (f"/web-viewer/instances/png-{instance.oid}_0", f"/web-viewer/instances/jpeg95-{instance.oid}",
                 f"/web-viewer/series/{series.oid}/study", f"/web-viewer/instances/jpeg95-{instance.oid}_0/x"):
        assert doctor("GET", path).status_code == 403, path
        rows = wait_for_audit(server, "actor = ? AND path = ? AND outcome = 'deny'", (USER, path))
        assert rows and rows[0]["reason"].startswith("malformed request: web viewer"), path


def test_anonymous_and_admin(server: Server, setup):
    _doctor, _granted, other = setup
    _study, series, instance = _first_series_and_instance(other)
    assert server.anonymous("GET", f"/web-viewer/series/{series.oid}").status_code == 403
    assert server.anonymous("GET", "/web-viewer/libs/jquery.js").status_code == 403
    assert server.admin("GET", f"/web-viewer/series/{series.oid}").status_code == 200
    assert server.admin("GET", f"/web-viewer/instances/jpeg95-{instance.oid}_0").status_code == 200

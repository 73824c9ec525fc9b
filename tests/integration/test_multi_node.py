"""Two Orthanc nodes sharing one Gate store: a grant revoked through one node stops working on the
other by itself, without anyone telling that node (it polls the store's grant version)."""

from __future__ import annotations

import time

import pytest
import requests

from tests.conftest import ADMIN, ADMIN_PASSWORD, DOCTOR, DOCTOR_PASSWORD, SAMPLES, TEST_GATE_CONFIG
from tests.harness import OrthancProcess, shared_keys

SAMPLE = SAMPLES / "patient1-instance1.dcm"
POLL_SECONDS = 0.2
DEADLINE_SECONDS = 10  # a functional deadline, far above the documented bound; not a speed goal


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory):
    shared = tmp_path_factory.mktemp("shared-store")
    gate = {**TEST_GATE_CONFIG, "DatabaseUrl": f"sqlite:///{shared / 'gate.sqlite'}", **shared_keys(shared),
            "GrantPollSeconds": POLL_SECONDS}
    first = OrthancProcess(tmp_path_factory.mktemp("node-a"), gate=gate)
    second = OrthancProcess(tmp_path_factory.mktemp("node-b"), gate=gate)
    first.create_user(ADMIN, ["admin"], ADMIN_PASSWORD)
    first.create_user(DOCTOR, ["referring_doctor"], DOCTOR_PASSWORD)
    try:
        for node in (first, second):
            node.start()
            stored = requests.post(node.url("/instances"), data=SAMPLE.read_bytes(), auth=(ADMIN, ADMIN_PASSWORD),
                                   timeout=30)
            assert stored.status_code == 200, stored.text
        yield first, second, stored.json()["ID"]
    finally:
        first.stop()
        second.stop()


def test_a_revocation_on_one_node_reaches_the_other(nodes):
    first, second, instance = nodes
    admin, doctor = (ADMIN, ADMIN_PASSWORD), (DOCTOR, DOCTOR_PASSWORD)
    patient_id = requests.get(first.url(f"/instances/{instance}/simplified-tags"), auth=admin,
                              timeout=30).json()["PatientID"]
    file_on_second = second.url(f"/instances/{instance}/file")
    assert requests.get(file_on_second, auth=doctor, timeout=30).status_code == 403

    grant = requests.post(first.url("/gate/api/grants"), auth=admin, timeout=30,
                          json={"user": DOCTOR, "patient_id": patient_id, "level": "download"})
    assert grant.status_code == 201, grant.text
    assert _first_answer(file_on_second, doctor, 200) is not None, "the grant never reached the other node"

    revoked = requests.delete(first.url(f"/gate/api/grants/{grant.json()['id']}"), auth=admin, timeout=30)
    assert revoked.status_code == 200
    took = _first_answer(file_on_second, doctor, 403)
    assert took is not None, "the other node kept serving a revoked grant"
    print(f"revocation reached the other node after {took:.2f} s")


def _first_answer(url: str, auth: tuple[str, str], status: int) -> float | None:
    """Seconds until `url` answers `status` (asked without pause, as a viewer would), or None."""
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE_SECONDS:
        if requests.get(url, auth=auth, timeout=30).status_code == status:
            return time.monotonic() - started
    return None

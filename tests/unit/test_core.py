"""core.orthanc_id: the ids Orthanc gives resources, worked out without asking Orthanc."""

from __future__ import annotations

import hashlib
import re

from plugin.services.core import orthanc_id


def test_a_patients_id_is_the_one_orthanc_gives():
    assert orthanc_id("GATE-P001") == "68540894-919f9477-2458825e-8c2d57c4-c2f88b9e"


def test_the_id_is_a_sha1_of_the_identifiers_joined_by_a_bar_in_five_groups():
    found = orthanc_id("PAT-1", "1.2.3")
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}", found)
    assert found.replace("-", "") == hashlib.sha1(b"PAT-1|1.2.3", usedforsecurity=False).hexdigest()


def test_the_id_is_exact_about_case_and_order():
    assert orthanc_id("pat-1") != orthanc_id("PAT-1")
    assert orthanc_id("PAT-1", "1.1") != orthanc_id("1.1", "PAT-1")


def test_non_ascii_patient_ids_are_hashed_as_utf8():
    assert orthanc_id("MÜLLER").replace("-", "") == hashlib.sha1("MÜLLER".encode(), usedforsecurity=False).hexdigest()

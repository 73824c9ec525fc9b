"""Searches and lists trimmed to the caller's grants: the constraint SearchService adds to /tools/find,
and what it asks Orthanc's core (a fake one here) and what it leaves out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from plugin.errors import BadRequest
from plugin.policies.grants import GrantSet, GrantTerm
from plugin.policies.levels import AccessLevel
from plugin.policies.types import Principal
from plugin.services.access import ResourceLocator
from plugin.services.search import SearchService, Visible, _matching
from tests.unit.conftest import T0
from tests.unit.fake_core import FakeCore, orthanc_id

DOCTOR = Principal("drnkosi", frozenset({"referring_doctor"}), "session")
V = AccessLevel.VIEW_ONLY


@dataclass
class FakeAccess:
    """What SearchService asks of AccessService: the caller's grants, and the locator."""

    locator: ResourceLocator
    grants: GrantSet = field(default_factory=GrantSet)

    def grants_of(self, username: str) -> GrantSet:
        return self.grants if username == DOCTOR.username else GrantSet()


@pytest.fixture
def core() -> FakeCore:
    core = FakeCore()
    core.add_study("PAT-1", "1.1")
    core.add_study("PAT-1", "1.2", modality="MR")
    core.add_study("PAT-2", "2.1")
    return core


@pytest.fixture
def access(core) -> FakeAccess:
    return FakeAccess(ResourceLocator(core))


@pytest.fixture
def search(core, access) -> SearchService:
    return SearchService(core, access)


def visible(patients=(), studies=()) -> Visible:
    return Visible(frozenset(patients), frozenset(studies))


STUDIES = visible(studies={"1.1", "1.2", "2.1"})


# -- the constraint ---------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["Study", "Series", "Instance", "study", "SERIES"])
def test_levels_below_patient_are_constrained_to_the_visible_studies(search, level):
    body = search._constrain({"Level": level, "Query": {"Modality": "CT"}}, visible(studies={"1.2", "1.1"}))
    assert body["Query"] == {"Modality": "CT", "StudyInstanceUID": "1.1\\1.2"}


def test_the_patient_level_is_constrained_to_the_granted_patient_ids(search):
    body = search._constrain({"Level": "Patient", "Query": {"PatientName": "D*"}},
                             visible(patients={"PAT-2", "PAT-1"}, studies={"1.1", "2.1"}))
    assert body["Query"] == {"PatientName": "D*", "PatientID": "PAT-1\\PAT-2"}


def test_study_grants_alone_show_no_patient_resource(search):
    assert search._constrain({"Level": "Patient", "Query": {}}, visible(studies={"1.1"})) is None


def test_everything_but_the_query_is_passed_on_untouched(search):
    request = {"Level": "Study", "Query": {}, "Limit": 100, "Since": 200, "Expand": True, "OrderBy": [{"x": 1}],
               "Labels": ["a"], "LabelsConstraint": "All", "RequestedTags": ["0008,0050"], "CaseSensitive": False}
    body = search._constrain(request, visible(studies={"1.1"}))
    assert body == {**request, "Query": {"StudyInstanceUID": "1.1"}}
    assert request["Query"] == {}  # the caller's request is not changed in place


def test_a_request_without_query_gets_one(search):
    assert search._constrain({"Level": "Series"}, visible(studies={"1.1"}))["Query"] == {"StudyInstanceUID": "1.1"}


@pytest.mark.parametrize("key", ["StudyInstanceUID", "studyinstanceuid", "0020000D", "0020000d", "0020,000D",
                                 "0020,000d", "(0020,000D)", " StudyInstanceUID "])
def test_the_callers_own_study_uid_is_intersected_in_any_spelling(search, key):
    body = search._constrain({"Level": "Study", "Query": {key: "1.2"}}, STUDIES)
    assert body["Query"] == {"StudyInstanceUID": "1.2"}


@pytest.mark.parametrize("key", ["StudyInstanceUID", "0020000D", "0020,000d"])
def test_the_callers_own_study_uid_cannot_reach_beyond_the_visible_ones(search, key):
    assert search._constrain({"Level": "Study", "Query": {key: "9.9"}}, STUDIES) is None


def test_two_spellings_of_the_study_uid_are_both_intersected(search):
    body = search._constrain({"Level": "Study", "Query": {"StudyInstanceUID": "1.*", "0020,000D": "*.2"}}, STUDIES)
    assert body["Query"] == {"StudyInstanceUID": "1.2"}


@pytest.mark.parametrize("key", ["PatientID", "00100020", "0010,0020", "patientid"])
def test_the_callers_own_patient_id_is_intersected_at_patient_level(search, key):
    body = search._constrain({"Level": "Patient", "Query": {key: "PAT-2\\PAT-9"}}, visible(patients={"PAT-1", "PAT-2"}))
    assert body["Query"] == {"PatientID": "PAT-2"}


def test_a_patient_id_constraint_below_patient_level_is_the_callers_own(search):
    # Below patient level the studies are what is constrained; PatientID only narrows further.
    body = search._constrain({"Level": "Study", "Query": {"PatientID": "PAT-9"}}, STUDIES)
    assert body["Query"] == {"PatientID": "PAT-9", "StudyInstanceUID": "1.1\\1.2\\2.1"}


@pytest.mark.parametrize(("pattern", "matched"), [
    ("", {"1.1", "1.2", "2.1"}),  # universal matching
    ("*", {"1.1", "1.2", "2.1"}),
    ("1.*", {"1.1", "1.2"}),
    ("?.1", {"1.1", "2.1"}),
    ("1.?", {"1.1", "1.2"}),
    ("1.1", {"1.1"}),
    ("1.1\\2.1", {"1.1", "2.1"}),
    ("1.1\\9.*", {"1.1"}),
    ("1", set()),  # exact, not a prefix
    ("1.1*", {"1.1"}),
    ("1.[12]", set()),  # [ is not special in DICOM matching
])
def test_matching_follows_dicom_wildcards(search, pattern, matched):
    body = search._constrain({"Level": "Study", "Query": {"StudyInstanceUID": pattern}}, STUDIES)
    assert (set(body["Query"]["StudyInstanceUID"].split("\\")) if body else set()) == matched


def test_a_bracket_matches_itself_only():
    assert _matching("A[12]", frozenset({"A[12]", "A1"})) == frozenset({"A[12]"})
    assert _matching("A[*", frozenset({"A[12]", "A1"})) == frozenset({"A[12]"})


# -- nothing visible: no call to the core --------------------------------------------------------------


def test_nothing_visible_constrains_to_none(search):
    assert search._constrain({"Level": "Study", "Query": {}}, visible()) is None
    assert search._constrain({"Level": "Patient", "Query": {}}, visible()) is None


def test_a_caller_with_no_grant_gets_an_empty_answer_without_asking_the_core(search, core):
    assert search.find(DOCTOR, {"Level": "Study", "Query": {}}, T0) == []
    assert search.listing(DOCTOR, "series", {"Expand": True}, None, 10, T0) == []
    assert core.calls == []


def test_a_constraint_that_matches_no_visible_study_does_not_ask_the_core(search, access, core):
    access.grants = GrantSet.of([], [("1.1", GrantTerm(V))])
    assert search.find(DOCTOR, {"Level": "Study", "Query": {"StudyInstanceUID": "2.1"}}, T0) == []
    assert core.calls == []


# -- bad requests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("request_body", [
    [], "Study", None,
    {"Query": {}}, {"Level": "Studies", "Query": {}}, {"Level": "", "Query": {}}, {"Level": 5, "Query": {}},
    {"Level": "Study", "Query": []}, {"Level": "Study", "Query": "x"},
    {"Level": "Study", "Query": {"PatientID": 5}}, {"Level": "Study", "Query": {"StudyInstanceUID": ["1.1"]}},
])
def test_a_bad_level_or_query_is_a_bad_request(search, request_body):
    with pytest.raises(BadRequest) as raised:
        search._constrain(request_body, STUDIES)
    assert raised.value.status == 400 and raised.value.message


def test_the_level_message_names_the_levels(search):
    with pytest.raises(BadRequest, match='"Patient", "Study", "Series", "Instance"'):
        search._constrain({"Level": "x"}, STUDIES)


# -- what is asked of the core ------------------------------------------------------------------------------


def test_find_asks_once_with_the_constraint_and_returns_the_cores_answer(search, access, core):
    access.grants = GrantSet.of([], [("1.2", GrantTerm(V)), ("2.1", GrantTerm(V, T0 - 1))])
    found = search.find(DOCTOR, {"Level": "Study", "Query": {}, "Expand": True, "Limit": 5}, T0)
    assert [s["MainDicomTags"]["StudyInstanceUID"] for s in found] == ["1.2"]  # 2.1's grant has expired
    assert core.finds == [{"Level": "Study", "Query": {"StudyInstanceUID": "1.2"}, "Expand": True, "Limit": 5}]


def test_a_patient_grant_shows_every_study_of_the_patient(search, access, core):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    assert search.visible(DOCTOR, T0) == visible(patients={"PAT-1"}, studies={"1.1", "1.2"})
    assert core.finds[0]["Query"] == {"PatientID": "PAT-1"}


def test_only_the_granted_patients_studies_count_whatever_the_core_answers(search, access, core, monkeypatch):
    # A core answering more than it was asked (here: every study) must not widen what is visible.
    answer_all = core._find
    monkeypatch.setattr(core, "_find", lambda request: answer_all({**request, "Query": {}}))
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    assert search.visible(DOCTOR, T0).study_uids == frozenset({"1.1", "1.2"})


def test_listing_turns_its_arguments_into_a_find(search, access, core):
    access.grants = GrantSet.of([], [("1.1", GrantTerm(V))])
    search.listing(DOCTOR, "instance", {"Expand": True, "RequestedTags": ["0008,0018"]}, 10, 20, T0)
    assert core.finds == [{"Level": "Instance", "Query": {"StudyInstanceUID": "1.1"}, "Expand": True,
                           "RequestedTags": ["0008,0018"], "Since": 10, "Limit": 20}]


def test_lookup_keeps_only_the_resources_the_caller_holds_a_grant_on(search, access, core):
    twin = core.add_study("PAT-2", "1.1")  # the same StudyInstanceUID under another patient
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    kept = search.lookup(DOCTOR, b"1.1", T0)
    assert [m["Type"] for m in kept] == ["Study"] and twin.study not in {m["ID"] for m in kept}
    assert [m["Type"] for m in search.lookup(DOCTOR, b"PAT-1", T0)] == ["Patient"]
    assert search.lookup(DOCTOR, b"PAT-2", T0) == []


def test_lookup_of_a_study_grant_does_not_return_the_patient(search, access):
    access.grants = GrantSet.of([], [("1.1", GrantTerm(V))])
    assert search.lookup(DOCTOR, b"PAT-1", T0) == []
    assert [m["Type"] for m in search.lookup(DOCTOR, b"1.1.1.1", T0)] == ["Instance"]


def test_statistics_count_only_what_the_caller_may_see(search, access):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    assert search.statistics(DOCTOR, T0) == {"CountPatients": 1, "CountStudies": 2, "CountSeries": 2,
                                             "CountInstances": 2}


def test_statistics_of_a_caller_with_no_grant_are_zero_without_asking_the_core(search, core):
    assert search.statistics(DOCTOR, T0) == {"CountPatients": 0, "CountStudies": 0, "CountSeries": 0,
                                             "CountInstances": 0}
    assert core.calls == []


# -- patient level: exact PatientIDs only (Orthanc matches PatientID without regard to case) -----------------


@pytest.fixture
def twin_by_case(core):
    """Another person whose PatientID differs from PAT-1 by case alone."""
    return core.add_study("pat-1", "3.1")


@pytest.mark.parametrize("expand", [False, True, None])
def test_a_patient_find_keeps_only_the_exact_patient_ids(search, access, core, twin_by_case, expand):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    request = {"Level": "Patient", "Query": {}} | ({} if expand is None else {"Expand": expand})
    found = search.find(DOCTOR, request, T0)
    if expand:
        assert [p["MainDicomTags"]["PatientID"] for p in found] == ["PAT-1"]
    else:
        assert found == [orthanc_id("PAT-1")]
    # The core was asked for expanded patients, so that their PatientIDs could be checked.
    assert core.finds[-1] == {**request, "Query": {"PatientID": "PAT-1"}, "Expand": True}


def test_a_patient_find_by_the_callers_own_patient_id_stays_exact(search, access, core, twin_by_case):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    assert search.find(DOCTOR, {"Level": "Patient", "Query": {"PatientID": "pat-1"}}, T0) == []
    found = search.find(DOCTOR, {"Level": "Patient", "Query": {"PatientName": "*"}, "Expand": True}, T0)
    assert [p["MainDicomTags"]["PatientID"] for p in found] == ["PAT-1"]


def test_a_patient_find_with_response_content_keeps_exact_ids_and_only_the_parts_asked(search, access, core,
                                                                                        twin_by_case):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    request = {"Level": "Patient", "Query": {}, "ResponseContent": ["Labels"]}
    found = search.find(DOCTOR, request, T0)
    assert core.finds[-1] == {**request, "Query": {"PatientID": "PAT-1"},
                              "ResponseContent": ["Labels", "ID", "MainDicomTags"]}
    assert len(found) == 1 and set(found[0]) <= {"Labels"}  # the twin "pat-1" dropped, extra parts too


def test_statistics_do_not_count_a_patient_differing_by_case(search, access, twin_by_case):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    assert search.statistics(DOCTOR, T0) == {"CountPatients": 1, "CountStudies": 2, "CountSeries": 2,
                                             "CountInstances": 2}


def test_the_studies_of_a_patient_differing_by_case_are_not_visible(search, access, twin_by_case):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    assert search.visible(DOCTOR, T0).study_uids == frozenset({"1.1", "1.2"})
    found = search.find(DOCTOR, {"Level": "Study", "Query": {"PatientID": "pat-1"}, "Expand": True}, T0)
    assert sorted(s["MainDicomTags"]["StudyInstanceUID"] for s in found) == ["1.1", "1.2"]  # PAT-1's only


@pytest.mark.parametrize("item", [
    {"MainDicomTags": {"PatientID": "PAT-1"}},
    {"MainDicomTags": {"0010,0020": "PAT-1"}},  # short
    {"MainDicomTags": {"0010,0020": {"Name": "PatientID", "Type": "String", "Value": "PAT-1"}}},  # full
])
def test_the_patient_id_is_read_in_every_tag_format(search, access, core, monkeypatch, item):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    other = {"MainDicomTags": {key: (value | {"Value": "pat-1"} if isinstance(value, dict) else "pat-1")
                               for key, value in item["MainDicomTags"].items()}}
    answers = [{"ID": "mine", **item}, {"ID": "theirs", **other}]
    real = core._find
    monkeypatch.setattr(core, "_find", lambda request: answers if request["Level"] == "Patient" else real(request))
    assert search.find(DOCTOR, {"Level": "Patient", "Query": {}, "Full": True}, T0) == ["mine"]

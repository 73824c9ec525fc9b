"""Searches and lists trimmed to the caller's grants: what is visible (worked out from grants and Orthanc
ids), plain listings answered from those ids, the constraint SearchService adds to /tools/find, and what
it asks Orthanc's core (a fake one here) and what it leaves out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from plugin.errors import BadRequest, Forbidden
from plugin.policies.grants import GrantSet, GrantTerm
from plugin.policies.levels import AccessLevel
from plugin.policies.types import Principal
from plugin.services.access import ResourceLocator
from plugin.services.core import CoreError
from plugin.services.search import SearchService, Visible, _matching
from tests.unit.conftest import T0
from tests.unit.fake_core import FakeCore, StudyIds, orthanc_id

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
def ids(core) -> dict[str, StudyIds]:
    """The fixture's studies by StudyInstanceUID (the ids are Orthanc's hashes, worked out again)."""
    return {uid: StudyIds(orthanc_id(pid), orthanc_id(pid, uid), orthanc_id(pid, uid, f"{uid}.1"),
                          orthanc_id(pid, uid, f"{uid}.1", f"{uid}.1.1"), pid, uid, f"{uid}.1", f"{uid}.1.1")
            for pid, uid in (("PAT-1", "1.1"), ("PAT-1", "1.2"), ("PAT-2", "2.1"))}


@pytest.fixture
def access(core, clock) -> FakeAccess:
    # On the test's clock: a patient's list of studies is kept until the test moves the clock.
    return FakeAccess(ResourceLocator(core, clock=clock))


@pytest.fixture
def search(core, access) -> SearchService:
    return SearchService(core, access)


def visible(patients=(), studies=()) -> Visible:
    return Visible({p: orthanc_id(p) for p in patients}, frozenset((u, f"id-of-{u}") for u in studies))


def finds_and_lookups(core: FakeCore) -> list[tuple[str, str]]:
    """The calls that search Orthanc's index (a plain listing makes none)."""
    return [call for call in core.calls if call[0] == "POST"]


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


def test_a_constraint_that_matches_no_visible_study_does_not_search_the_core(search, access, core, ids):
    access.grants = GrantSet.of([], [("1.1", GrantTerm(V))], {"1.1": ids["1.1"].study})
    assert search.find(DOCTOR, {"Level": "Study", "Query": {"StudyInstanceUID": "2.1"}}, T0) == []
    assert search.find(DOCTOR, {"Level": "Study", "Query": {"StudyInstanceUID": "2.1"}, "StudyDate": "x"}, T0) == []
    assert core.calls == [("GET", f"/studies/{ids['1.1'].study}")]  # locating the grant, once


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


def test_a_search_with_a_key_of_the_callers_asks_once_with_the_constraint(search, access, core):
    access.grants = GrantSet.of([], [("1.2", GrantTerm(V)), ("2.1", GrantTerm(V, T0 - 1))])
    request = {"Level": "Study", "Query": {"StudyDate": "2024*"}, "Expand": True, "Limit": 5}
    found = search.find(DOCTOR, request, T0)
    assert [s["MainDicomTags"]["StudyInstanceUID"] for s in found] == ["1.2"]  # 2.1's grant has expired
    assert core.finds == [{**request, "Query": {"StudyDate": "2024*", "StudyInstanceUID": "1.2"}}]


@pytest.mark.parametrize("extra", [{"RequestedTags": ["0008,0050"]}, {"OrderBy": [{"Type": "DicomTag"}]},
                                   {"ResponseContent": ["MainDicomTags"]}, {"Labels": ["x"]}])
def test_a_listing_with_anything_a_plain_listing_cannot_honour_goes_to_the_core(search, access, core, extra):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    search.find(DOCTOR, {"Level": "Study", "Query": {}, **extra}, T0)
    assert core.finds == [{"Level": "Study", "Query": {"StudyInstanceUID": "1.1\\1.2"}, **extra}]


@pytest.mark.parametrize("level", ["Series", "Instance"])
def test_listings_below_study_level_go_to_the_core_with_the_uid_constraint(search, access, core, level):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    found = search.find(DOCTOR, {"Level": level, "Query": {}}, T0)
    assert len(found) == 2
    assert core.finds == [{"Level": level, "Query": {"StudyInstanceUID": "1.1\\1.2"}}]


def test_a_patient_grant_shows_every_study_of_the_patient(search, access, core, ids):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    assert search.visible(DOCTOR, T0) == Visible({"PAT-1": ids["1.1"].patient}, frozenset(
        {("1.1", ids["1.1"].study), ("1.2", ids["1.2"].study)}))
    # The patient by the hash of their PatientID, then each study: no search of Orthanc's index.
    assert core.calls == [("GET", f"/patients/{orthanc_id('PAT-1')}"), ("GET", f"/studies/{ids['1.1'].study}"),
                          ("GET", f"/studies/{ids['1.2'].study}")]


def test_what_is_visible_is_asked_of_the_core_once_while_the_locator_keeps_it(search, access, core):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    first = search.visible(DOCTOR, T0)
    calls = len(core.calls)
    assert search.visible(DOCTOR, T0) == first
    assert len(core.calls) == calls
    new = core.add_study("PAT-1", "1.3")
    access.locator.study_added(new.study)  # Orthanc's NEW_STUDY
    assert search.visible(DOCTOR, T0).study_uids == frozenset({"1.1", "1.2", "1.3"})


def test_a_patient_grant_whose_patient_no_longer_exists_contributes_nothing(search, access, core):
    access.grants = GrantSet.of([("PAT-9", GrantTerm(V)), ("PAT-2", GrantTerm(V))], [])
    shown = search.visible(DOCTOR, T0)
    assert (shown.patient_ids, shown.study_uids) == (frozenset({"PAT-2"}), frozenset({"2.1"}))
    assert search.find(DOCTOR, {"Level": "Patient", "Query": {}}, T0) == [orthanc_id("PAT-2")]
    assert finds_and_lookups(core) == []


def test_a_patient_grant_alone_on_a_missing_patient_lists_nothing(search, access, core):
    access.grants = GrantSet.of([("PAT-9", GrantTerm(V))], [])
    assert search.find(DOCTOR, {"Level": "Study", "Query": {}}, T0) == []
    assert search.find(DOCTOR, {"Level": "Patient", "Query": {}}, T0) == []
    assert search.find(DOCTOR, {"Level": "Series", "Query": {}}, T0) == []
    assert core.gets() == [f"/patients/{orthanc_id('PAT-9')}"] * 3 and finds_and_lookups(core) == []


def test_a_study_grant_with_a_recorded_id_is_located_without_a_lookup(search, access, core, ids):
    access.grants = GrantSet.of([], [("1.2", GrantTerm(V))], {"1.2": ids["1.2"].study})
    assert search.visible(DOCTOR, T0) == Visible({}, frozenset({("1.2", ids["1.2"].study)}))
    assert core.calls == [("GET", f"/studies/{ids['1.2'].study}")]


def test_a_study_grant_without_a_recorded_id_falls_back_to_a_lookup(search, access, core, ids):
    access.grants = GrantSet.of([], [("1.2", GrantTerm(V))])
    assert search.visible(DOCTOR, T0) == Visible({}, frozenset({("1.2", ids["1.2"].study)}))
    assert core.count("POST", "/tools/lookup") == 1
    search.visible(DOCTOR, T0)
    assert core.count("POST", "/tools/lookup") == 1  # found once: remembered


def test_a_recorded_id_naming_another_study_is_not_trusted(search, access, core, ids):
    access.grants = GrantSet.of([], [("1.2", GrantTerm(V))], {"1.2": ids["2.1"].study})
    assert search.visible(DOCTOR, T0) == Visible({}, frozenset({("1.2", ids["1.2"].study)}))
    assert core.count("POST", "/tools/lookup") == 1


def test_a_granted_study_since_deleted_is_not_visible_nor_looked_up_on_every_request(search, access, core, ids,
                                                                                      clock):
    core.remove_study(ids["1.2"])
    access.grants = GrantSet.of([], [("1.2", GrantTerm(V)), ("2.1", GrantTerm(V))], {"1.2": ids["1.2"].study})
    for _ in range(3):
        assert search.visible(DOCTOR, T0) == Visible({}, frozenset({("2.1", ids["2.1"].study)}))
    assert core.count("POST", "/tools/lookup") == 2  # 2.1 once (then remembered), 1.2 once (then a miss)
    clock.advance(60)
    search.visible(DOCTOR, T0)
    assert core.count("POST", "/tools/lookup") == 3  # the miss is kept for a few seconds only


def test_a_patient_grant_and_a_study_grant_on_the_same_study_show_it_once(search, access, core, ids):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [("1.1", GrantTerm(V)), ("2.1", GrantTerm(V))])
    assert search.find(DOCTOR, {"Level": "Study", "Query": {}}, T0) == sorted(
        [ids["1.1"].study, ids["1.2"].study, ids["2.1"].study])
    # 1.1's grant is located too (its UID could name another patient's study), once each: then remembered.
    assert core.count("POST", "/tools/lookup") == 2
    search.find(DOCTOR, {"Level": "Study", "Query": {}}, T0)
    assert core.count("POST", "/tools/lookup") == 2


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


def test_statistics_count_only_what_the_caller_may_see(search, access, core, ids):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    assert search.statistics(DOCTOR, T0) == {"CountPatients": 1, "CountStudies": 2, "CountSeries": 2,
                                             "CountInstances": 2}
    assert core.gets("/studies/") == [f"/studies/{ids['1.1'].study}", f"/studies/{ids['1.2'].study}",
                                      f"/studies/{ids['1.1'].study}/statistics",
                                      f"/studies/{ids['1.2'].study}/statistics"]
    assert finds_and_lookups(core) == []


def test_statistics_sum_each_visible_studys_statistics(search, access, core, ids, monkeypatch):
    answers = {ids["1.1"].study: {"CountSeries": 3, "CountInstances": 40},
               ids["2.1"].study: {"CountSeries": 2, "CountInstances": 5, "DiskSize": "1"}}
    real = core.get
    monkeypatch.setattr(core, "get", lambda path: answers[path.split("/")[2]] if path.endswith("/statistics")
                        else real(path))
    access.grants = GrantSet.of([], [("1.1", GrantTerm(V)), ("2.1", GrantTerm(V))],
                                {"1.1": ids["1.1"].study, "2.1": ids["2.1"].study})
    assert search.statistics(DOCTOR, T0) == {"CountPatients": 0, "CountStudies": 2, "CountSeries": 5,
                                             "CountInstances": 45}  # a study grant shows no patient


def test_statistics_skip_a_study_deleted_meanwhile(search, access, core, ids):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    search.visible(DOCTOR, T0)  # the list of PAT-1's studies is kept for a few seconds
    core.remove_study(ids["1.2"])
    assert search.statistics(DOCTOR, T0) == {"CountPatients": 1, "CountStudies": 1, "CountSeries": 1,
                                             "CountInstances": 1}


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
def test_a_plain_patient_listing_holds_the_exact_patient_only(search, access, core, twin_by_case, expand):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    request = {"Level": "Patient", "Query": {}} | ({} if expand is None else {"Expand": expand})
    found = search.find(DOCTOR, request, T0)
    if expand:
        assert [p["MainDicomTags"]["PatientID"] for p in found] == ["PAT-1"]
    else:
        assert found == [orthanc_id("PAT-1")]
    assert finds_and_lookups(core) == []  # the patient by the hash of the exact PatientID


@pytest.mark.parametrize("expand", [False, True, None])
def test_a_patient_search_keeps_only_the_exact_patient_ids(search, access, core, twin_by_case, expand):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    request = {"Level": "Patient", "Query": {"PatientName": "*"}} | ({} if expand is None else {"Expand": expand})
    found = search.find(DOCTOR, request, T0)
    if expand:
        assert [p["MainDicomTags"]["PatientID"] for p in found] == ["PAT-1"]
    else:
        assert found == [orthanc_id("PAT-1")]
    # The core was asked for expanded patients, so that their PatientIDs could be checked.
    assert core.finds == [{**request, "Query": {"PatientName": "*", "PatientID": "PAT-1"}, "Expand": True}]


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
                              "ResponseContent": ["Labels", "MainDicomTags"]}
    assert len(found) == 1 and set(found[0]) <= {"ID", "Labels"}  # the twin "pat-1" dropped, extra parts too


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
    assert search.find(DOCTOR, {"Level": "Patient", "Query": {"PatientName": "*"}, "Full": True}, T0) == ["mine"]


# -- plain listings: answered from the visible ids, without searching Orthanc's index ----------------------


@pytest.fixture
def six_studies(core, access, ids) -> list[StudyIds]:
    """PAT-1 granted, with six studies (1.1 to 1.6), in the order of their Orthanc ids."""
    added = [ids["1.1"], ids["1.2"]] + [core.add_study("PAT-1", f"1.{n}") for n in range(3, 7)]
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [("2.1", GrantTerm(V, T0 - 1))])  # 2.1's expired
    return sorted(added, key=lambda s: s.study)


@pytest.fixture
def six(six_studies) -> list[str]:
    """The Orthanc ids of PAT-1's six studies, sorted: as a plain listing gives them."""
    return [s.study for s in six_studies]


def warm(search: SearchService, core: FakeCore) -> None:
    """Work out what is visible once (the locator keeps it), then forget the calls that took."""
    search.visible(DOCTOR, T0)
    core.calls.clear()


@pytest.mark.parametrize("request_body", [
    {"Level": "Study", "Query": {}},
    {"Level": "Study"},
    {"Level": "study", "Query": {"StudyInstanceUID": ""}},
    {"Level": "Study", "Query": {"StudyInstanceUID": "*"}, "CaseSensitive": True},
    {"Level": "Study", "Query": {}, "Expand": False, "Since": 0, "Limit": 0},
])
def test_a_plain_study_listing_is_answered_from_the_visible_ids_without_a_find(search, core, six, request_body):
    assert search.find(DOCTOR, request_body, T0) == six
    assert finds_and_lookups(core) == []
    assert sorted(core.gets("/studies/")) == [f"/studies/{oid}" for oid in six]  # located once each, no more


def test_a_plain_listing_takes_the_callers_own_uid_constraint(search, core, six):
    found = search.find(DOCTOR, {"Level": "Study", "Query": {"0020,000D": "1.2\\1.5\\2.1"}}, T0)
    assert found == sorted([orthanc_id("PAT-1", "1.2"), orthanc_id("PAT-1", "1.5")])
    assert finds_and_lookups(core) == []


@pytest.mark.parametrize(("since", "limit", "page"), [
    (0, 2, slice(0, 2)), (2, 2, slice(2, 4)), (5, 2, slice(5, 6)), (6, 2, slice(6, 6)), (60, 1, slice(0, 0)),
    (None, 3, slice(0, 3)), (4, None, slice(4, 6)), (1, 0, slice(1, 6)), (0, 100, slice(0, 6)),
])
def test_since_and_limit_page_the_sorted_visible_ids(search, core, six, since, limit, page):
    request = {"Level": "Study", "Query": {}} | ({} if since is None else {"Since": since}) | \
        ({} if limit is None else {"Limit": limit})
    assert search.find(DOCTOR, request, T0) == six[page]


def test_listing_pages_after_trimming(search, core, six):
    core.add_study("PAT-2", "2.2")  # not granted: takes no place on a page
    pages = [search.listing(DOCTOR, "study", {}, since, 4, T0) for since in (0, 4, 8)]
    assert pages == [six[:4], six[4:], []]


def test_expand_fetches_only_the_pages_studies(search, core, six):
    warm(search, core)
    found = search.find(DOCTOR, {"Level": "Study", "Query": {}, "Expand": True, "Since": 1, "Limit": 2}, T0)
    assert [s["ID"] for s in found] == six[1:3]
    assert core.calls == [("GET", f"/studies/{oid}") for oid in six[1:3]]


def test_an_expanded_study_is_orthancs_own_answer(search, core, six):
    [found] = search.find(DOCTOR, {"Level": "Study", "Query": {}, "Expand": True, "Limit": 1}, T0)
    assert found == core.get(f"/studies/{six[0]}")


def test_a_study_deleted_meanwhile_is_left_out_of_an_expanded_page(search, core, six_studies, six):
    warm(search, core)  # PAT-1's list of studies is kept for a few seconds: it still names the deleted one
    core.remove_study(six_studies[1])
    found = search.find(DOCTOR, {"Level": "Study", "Query": {}, "Expand": True, "Limit": 3}, T0)
    assert [s["ID"] for s in found] == [six[0], six[2]]  # skipped; the page is not refilled
    assert core.calls == [("GET", f"/studies/{oid}") for oid in six[:3]]


def test_a_study_the_core_refuses_is_left_out_of_an_expanded_page(search, core, six):
    warm(search, core)
    core.fail.add(f"/studies/{six[0]}?full")
    found = search.find(DOCTOR, {"Level": "Study", "Query": {}, "Expand": True, "Full": True}, T0)
    assert [s["ID"] for s in found] == six[1:]


def test_a_study_the_core_cannot_describe_is_not_visible(search, core, six):
    core.fail.add(f"/studies/{six[0]}")
    assert search.find(DOCTOR, {"Level": "Study", "Query": {}}, T0) == six[1:]


@pytest.mark.parametrize(("options", "suffix"), [
    ({"Full": True}, "?full"), ({"Short": True}, "?short"), ({"Full": True, "Short": True}, "?full"),
    ({"Full": False}, ""), ({}, ""),
])
def test_full_and_short_are_passed_on_as_options_of_the_get(search, core, six, options, suffix):
    warm(search, core)
    found = search.find(DOCTOR, {"Level": "Study", "Query": {}, "Expand": True, "Limit": 2, **options}, T0)
    assert len(found) == 2
    assert core.calls == [("GET", f"/studies/{oid}{suffix}") for oid in six[:2]]


def test_full_without_expand_lists_ids_only(search, core, six):
    warm(search, core)
    assert search.find(DOCTOR, {"Level": "Study", "Query": {}, "Full": True}, T0) == six
    assert core.calls == []


def test_listing_options_reach_the_direct_answer(search, core, six):
    warm(search, core)
    found = search.listing(DOCTOR, "study", {"Expand": True, "Short": True}, 5, 10, T0)
    assert [s["ID"] for s in found] == six[5:]
    assert core.calls == [("GET", f"/studies/{six[5]}?short")]


@pytest.mark.parametrize("key", ["Since", "Limit"])
@pytest.mark.parametrize("value", [-1, "5", 1.5, True, None, [1]])
def test_a_since_or_limit_that_is_not_a_whole_number_is_a_bad_request(search, core, six, key, value):
    with pytest.raises(BadRequest, match=f"{key} must be a whole number"):
        search.find(DOCTOR, {"Level": "Study", "Query": {}, key: value}, T0)
    assert finds_and_lookups(core) == []


def test_a_listing_with_a_key_of_the_callers_goes_to_the_core_with_the_uid_constraint(search, core, six):
    request = {"Level": "Study", "Query": {"StudyDate": "20240101"}, "Expand": True, "Since": 2, "Limit": 2}
    found = search.find(DOCTOR, request, T0)
    uids = "\\".join(f"1.{n}" for n in range(1, 7))
    assert core.finds == [{**request, "Query": {"StudyDate": "20240101", "StudyInstanceUID": uids}}]
    assert len(found) == 2  # Since and Limit applied by Orthanc, after the constraint


def test_a_patient_id_key_at_study_level_is_the_callers_own_and_goes_to_the_core(search, core, six):
    search.find(DOCTOR, {"Level": "Study", "Query": {"PatientID": "PAT-1"}}, T0)
    assert len(core.finds) == 1


def test_a_plain_patient_listing_holds_the_patients_of_patient_grants_only(search, access, core, ids):
    access.grants = GrantSet.of([("PAT-2", GrantTerm(V))], [("1.1", GrantTerm(V))], {"1.1": ids["1.1"].study})
    assert search.find(DOCTOR, {"Level": "Patient", "Query": {}}, T0) == [ids["2.1"].patient]
    core.calls.clear()
    [patient] = search.find(DOCTOR, {"Level": "Patient", "Query": {}, "Expand": True, "Full": True}, T0)
    assert patient["MainDicomTags"]["PatientID"] == "PAT-2"
    assert core.calls == [("GET", f"/patients/{ids['2.1'].patient}?full")]
    assert finds_and_lookups(core) == []


def test_a_plain_patient_listing_pages_sorted_patient_ids(search, access, core):
    pids = [f"P{n}" for n in range(5)]
    for pid in pids:
        core.add_study(pid, f"{pid}.1")
    access.grants = GrantSet.of([(pid, GrantTerm(V)) for pid in pids], [])
    expected = sorted(orthanc_id(pid) for pid in pids)
    assert search.find(DOCTOR, {"Level": "Patient", "Query": {}, "Since": 1, "Limit": 3}, T0) == expected[1:4]
    assert search.find(DOCTOR, {"Level": "Patient", "Query": {"PatientID": "P3\\P1"}}, T0) == sorted(
        [orthanc_id("P1"), orthanc_id("P3")])
    assert finds_and_lookups(core) == []


def test_study_grants_alone_list_no_patient_without_asking_the_core(search, access, core, ids):
    access.grants = GrantSet.of([], [("1.1", GrantTerm(V))], {"1.1": ids["1.1"].study})
    assert search.find(DOCTOR, {"Level": "Patient", "Query": {}, "Expand": True}, T0) == []
    assert core.gets("/patients/") == [] and finds_and_lookups(core) == []


def test_count_resources_counts_a_plain_listing_without_a_find(search, core, six):
    assert len(search.find(DOCTOR, {"Level": "Study", "Query": {}, "Expand": False}, T0)) == 6
    assert finds_and_lookups(core) == []


# -- a StudyInstanceUID shared by studies of two patients --------------------------------------------------


def test_two_granted_patients_with_a_study_uid_in_common_both_list_it(search, access, core, ids):
    twin = core.add_study("PAT-2", "1.1")  # the same StudyInstanceUID under another patient
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V)), ("PAT-2", GrantTerm(V))], [])
    found = search.find(DOCTOR, {"Level": "Study", "Query": {}}, T0)
    assert found == sorted([ids["1.1"].study, ids["1.2"].study, ids["2.1"].study, twin.study])
    found = search.find(DOCTOR, {"Level": "Study", "Query": {"StudyDate": "*"}}, T0)
    assert sorted(found) == sorted([ids["1.1"].study, ids["1.2"].study, ids["2.1"].study, twin.study])
    assert search.statistics(DOCTOR, T0)["CountStudies"] == 4


def test_a_search_does_not_show_an_ungranted_patients_study_sharing_a_visible_uid(search, access, core, ids):
    core.add_study("PAT-9", "1.1")  # the same StudyInstanceUID under a patient the caller holds nothing on
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    assert search.find(DOCTOR, {"Level": "Study", "Query": {}}, T0) == sorted([ids["1.1"].study, ids["1.2"].study])
    found = search.find(DOCTOR, {"Level": "Study", "Query": {"StudyDate": "*"}, "Expand": True}, T0)
    assert {s["PatientMainDicomTags"]["PatientID"] for s in found} == {"PAT-1"}
    assert len(found) == 2


@pytest.mark.parametrize(("level", "part"), [("Series", "series"), ("Instance", "instance")])
@pytest.mark.parametrize("expand", [False, True])
def test_series_and_instances_of_an_ungranted_twin_study_are_left_out(search, access, core, ids, level, part,
                                                                        expand):
    twin = core.add_study("PAT-9", "1.1")
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    found = search.find(DOCTOR, {"Level": level, "Query": {}, "Expand": expand}, T0)
    assert len(core._find(core.finds[0])) == 3  # Orthanc answered the twin's too: dropped by its study
    assert sorted(f["ID"] if expand else f for f in found) == sorted(
        getattr(ids[uid], part) for uid in ("1.1", "1.2"))
    assert getattr(twin, part) not in {f["ID"] if expand else f for f in found}


def test_a_study_grant_on_a_twin_uid_shows_the_granted_study_only(search, access, core, ids):
    core.add_study("PAT-9", "1.1")
    access.grants = GrantSet.of([], [("1.1", GrantTerm(V))], {"1.1": ids["1.1"].study})
    assert search.find(DOCTOR, {"Level": "Study", "Query": {"StudyDate": "*"}}, T0) == [ids["1.1"].study]
    assert search.find(DOCTOR, {"Level": "Series", "Query": {}}, T0) == [ids["1.1"].series]


@pytest.mark.parametrize("level", ["Study", "Series"])
def test_response_content_answers_are_kept_by_the_id_orthanc_always_puts_in_them(search, access, core, ids, level):
    core.add_study("PAT-9", "1.1")
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    request = {"Level": level, "Query": {}, "ResponseContent": ["MainDicomTags"]}
    found = search.find(DOCTOR, request, T0)
    # Asked as given: Orthanc 1.12.7 refuses "ID" as a ResponseContent value (it answers it always).
    assert core.finds == [{**request, "Query": {"StudyInstanceUID": "1.1\\1.2"}}]
    assert all(set(item) == {"ID", "MainDicomTags"} for item in found)
    key = "StudyInstanceUID" if level == "Study" else "SeriesInstanceUID"
    assert sorted(item["MainDicomTags"][key] for item in found) == (
        ["1.1", "1.2"] if level == "Study" else ["1.1.1", "1.2.1"])
    assert len(core._find(core.finds[0])) == 3  # Orthanc answered the twin's too: dropped by its id


def test_response_content_naming_id_is_orthancs_refusal_passed_on(search, access, core, ids):
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    with pytest.raises(CoreError) as refused:
        search.find(DOCTOR, {"Level": "Study", "Query": {}, "ResponseContent": ["ID", "Labels"]}, T0)
    assert refused.value.status == 400


# -- one patient (Orthanc Explorer's study page) ------------------------------------------------------

def test_a_patient_is_whole_for_its_grantee_and_trimmed_for_a_study_grantee(search, access, core, ids):
    patient = ids["1.1"].patient
    core.resources[f"/patients/{patient}"].update(LastUpdate="20261204T120000", IsStable=False)
    core.resources[f"/studies/{ids['1.1'].study}"].update(LastUpdate="20261201T080000", IsStable=True)
    access.grants = GrantSet.of([("PAT-1", GrantTerm(V))], [])
    whole = search.patient(DOCTOR, patient, f"/patients/{patient}", T0)
    assert whole["Studies"] == [ids["1.1"].study, ids["1.2"].study] and whole["LastUpdate"] == "20261204T120000"
    access.grants = GrantSet.of([], [("1.1", GrantTerm(V))])
    trimmed = search.patient(DOCTOR, patient, f"/patients/{patient}", T0)
    # Only the study held, and nothing that tells of the other (when it changed, whether it is complete).
    assert trimmed["Studies"] == [ids["1.1"].study]
    assert (trimmed["LastUpdate"], trimmed["IsStable"]) == ("20261201T080000", True)
    assert trimmed["MainDicomTags"]["PatientID"] == "PAT-1"


def test_a_patient_is_refused_without_any_of_its_studies_and_when_unknown(search, access, ids):
    access.grants = GrantSet.of([], [("2.1", GrantTerm(V))])
    for patient in (ids["1.1"].patient, orthanc_id("NOBODY")):
        with pytest.raises(Forbidden):
            search.patient(DOCTOR, patient, f"/patients/{patient}", T0)

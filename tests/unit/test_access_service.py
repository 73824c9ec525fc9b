"""Who holds which level on what a request names: ResourceLocator against a fake Orthanc core, and
AccessService with a real store (grant sets, their cache and its invalidation, scopes of requests)."""

from __future__ import annotations

import json
import threading

import pytest

from plugin.errors import StoreUnavailable
from plugin.policies.grants import NEVER, NOTHING, Held
from plugin.policies.levels import AccessLevel
from plugin.policies.routes import classify
from plugin.policies.types import ANONYMOUS, Principal
from plugin.services import access as access_module
from plugin.services.access import NO_SCOPE, AccessService, Located, ResourceLocator
from plugin.store import grants as grant_store
from plugin.store.db import Store
from plugin.store.models import Doctor, Grant
from tests.unit.conftest import T0, sqlite_url
from tests.unit.fake_core import FakeCore

V, D, N, F = AccessLevel.VIEW_ONLY, AccessLevel.DOWNLOAD, AccessLevel.ANNOTATE, AccessLevel.FULL
DOCTOR = Principal("drnkosi", frozenset({"referring_doctor"}), "session")
ADMIN = Principal("root1", frozenset({"admin"}), "session")


@pytest.fixture
def core() -> FakeCore:
    return FakeCore()


@pytest.fixture
def catalogue(core):
    """Two patients: PAT-1 with studies 1.1 and 1.2, PAT-2 with study 2.1."""
    return {"a": core.add_study("PAT-1", "1.1"), "b": core.add_study("PAT-1", "1.2"),
            "c": core.add_study("PAT-2", "2.1")}


@pytest.fixture
def locator(core) -> ResourceLocator:
    return ResourceLocator(core)


@pytest.fixture
def access(store, locator, clock) -> AccessService:
    return AccessService(store, locator, clock=clock)


def grant(store: Store, level: str, *, user: str | None = "drnkosi", doctor: int | None = None,
          patient_id: str | None = None, study_uid: str | None = None, expires_at: float | None = None) -> int:
    with store.transaction() as db:
        [added] = grant_store.add_grants(db, [Grant(
            subject_user=None if doctor is not None else user, subject_doctor_id=doctor, patient_id=patient_id,
            study_uid=study_uid, level=level, expires_at=expires_at, source="manual", created_at=T0,
            created_by="test")])
        return added.id


def revoke(store: Store, grant_id: int) -> None:
    with store.transaction() as db:
        grant_store.revoke_grants(db, [grant_store.grant_by_id(db, grant_id)], T0, "test")


def scope_of(access: AccessService, principal: Principal, method: str, path: str, query=None, body: bytes = b"",
             now: float = T0):
    return access.scope(principal, classify(method, path, query or {}, {}), body, now)


# == ResourceLocator ====================================================================================


def test_a_patient_id_locates_the_patient_only(locator, catalogue):
    a = catalogue["a"]
    assert locator.by_orthanc_id("patient", a.patient) == Located("PAT-1", a.patient)


@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_ids_below_patient_level_locate_their_patient_and_study(locator, catalogue, level):
    a = catalogue["a"]
    orthanc_id = {"study": a.study, "series": a.series, "instance": a.instance}[level]
    assert locator.by_orthanc_id(level, orthanc_id) == Located("PAT-1", a.patient, "1.1", a.study)


def test_a_located_id_is_not_asked_again(locator, core, catalogue):
    a = catalogue["a"]
    first = locator.by_orthanc_id("instance", a.instance)
    calls = len(core.calls)
    assert locator.by_orthanc_id("instance", a.instance) == first
    assert len(core.calls) == calls
    assert [core.count("GET", f"/{p}/{i}") for p, i in
            (("instances", a.instance), ("series", a.series), ("studies", a.study))] == [1, 1, 1]


def test_an_instance_locates_through_a_cached_series_without_asking_for_it_again(locator, core, catalogue):
    a = catalogue["a"]
    locator.by_orthanc_id("series", a.series)
    locator.by_orthanc_id("instance", a.instance)
    assert core.count("GET", f"/series/{a.series}") == 1 and core.count("GET", f"/studies/{a.study}") == 1


@pytest.mark.parametrize("level", ["patient", "study", "series", "instance"])
def test_an_unknown_id_locates_nothing(locator, catalogue, level):
    assert locator.by_orthanc_id(level, "00000000-00000000-00000000-00000000-00000000") is None


def test_an_id_of_another_level_locates_nothing(locator, catalogue):
    assert locator.by_orthanc_id("study", catalogue["a"].series) is None


def test_a_core_error_locates_nothing_and_is_not_remembered(locator, core, catalogue):
    a = catalogue["a"]
    core.fail.add(f"/studies/{a.study}")
    assert locator.by_orthanc_id("study", a.study) is None
    core.fail.clear()
    assert locator.by_orthanc_id("study", a.study) == Located("PAT-1", a.patient, "1.1", a.study)


def test_by_any_id_names_the_level_it_found(locator, catalogue):
    a = catalogue["a"]
    assert locator.by_any_id(a.series) == ("series", Located("PAT-1", a.patient, "1.1", a.study))
    assert locator.by_any_id(a.patient) == ("patient", Located("PAT-1", a.patient))
    assert locator.by_any_id("nope") is None


def test_a_uid_locates_through_lookup(locator, catalogue):
    a = catalogue["a"]
    assert locator.by_uid("study", "1.1") == (Located("PAT-1", a.patient, "1.1", a.study),)
    assert locator.by_uid("instance", "1.1.1.1") == (Located("PAT-1", a.patient, "1.1", a.study),)
    assert locator.by_uid("patient", "PAT-2") == (Located("PAT-2", catalogue["c"].patient),)


def test_a_uid_of_another_level_or_unknown_locates_nothing(locator, catalogue):
    assert locator.by_uid("series", "1.1") == ()
    assert locator.by_uid("study", "9.9.9") == ()


def test_a_uid_found_once_is_remembered(locator, core, catalogue):
    locator.by_uid("study", "1.1")
    locator.by_uid("study", "1.1")
    assert core.count("POST", "/tools/lookup") == 1


def test_a_uid_found_under_two_patients_returns_both_and_is_asked_again(locator, core, catalogue):
    twin = core.add_study("PAT-2", "1.1")  # the same StudyInstanceUID under another patient
    found = locator.by_uid("study", "1.1")
    assert {(loc.patient_id, loc.study_oid) for loc in found} == {("PAT-1", catalogue["a"].study),
                                                                  ("PAT-2", twin.study)}
    locator.by_uid("study", "1.1")
    assert core.count("POST", "/tools/lookup") == 2  # never cached: a third could be stored


def test_a_lookup_refused_by_the_core_locates_nothing(locator, core, catalogue):
    core.fail.add("/tools/lookup")
    assert locator.by_uid("study", "1.1") == ()


def test_the_cache_is_bounded(core, catalogue):
    locator = ResourceLocator(core, max_entries=2)
    ids = [catalogue[k].study for k in "abc"]
    for orthanc_id in ids:
        locator.by_orthanc_id("study", orthanc_id)
    calls = len(core.calls)
    locator.by_orthanc_id("study", ids[0])  # dropped when the third came in
    assert len(core.calls) == calls + 1


# == AccessService: grant sets ===========================================================================


def test_grants_of_reads_the_users_patient_and_study_grants(access, store):
    grant(store, "download", patient_id="PAT-1")
    grant(store, "full", study_uid="2.1", expires_at=T0 + 60)
    grant(store, "full", user="someone-else", study_uid="1.1")
    grants = access.grants_of("drnkosi")
    assert grants.on_patient("PAT-1", T0) == Held(D, NEVER)
    assert grants.on_study("PAT-2", "2.1", T0) == Held(F, T0 + 60)
    assert grants.on_study("PAT-1", "1.1", T0) == Held(D, NEVER)  # the patient grant, not someone else's


def test_grants_of_reads_grants_of_the_doctor_tied_to_the_user(access, store):
    with store.transaction() as db:
        doctor = Doctor(hpcsa_number="MP0123456", last_name="Nkosi", username="drnkosi", created_at=T0,
                        updated_at=T0)
        db.add(doctor)
        db.flush()
        doctor_id = doctor.id
    grant(store, "report", doctor=doctor_id, study_uid="1.2")
    assert access.grants_of("drnkosi").on_study("PAT-1", "1.2", T0).level is AccessLevel.REPORT


def test_revoked_and_expired_grants_are_not_read(access, store, clock):
    revoke(store, grant(store, "full", study_uid="1.1"))
    grant(store, "full", study_uid="1.2", expires_at=clock())
    assert not access.grants_of("drnkosi")


def test_a_grant_set_is_cached(access, store, monkeypatch):
    grant(store, "download", study_uid="1.1")
    calls = []
    real = grant_store.active_grants_of_user
    monkeypatch.setattr(access_module.grant_store, "active_grants_of_user",
                        lambda db, user, now: calls.append(user) or real(db, user, now))
    first = access.grants_of("drnkosi")
    assert access.grants_of("drnkosi") is first
    assert calls == ["drnkosi"]


def test_invalidate_calls_subscribers_bumps_the_generation_and_drops_sets(access, store):
    forgotten = []
    access.subscribe(lambda: forgotten.append("gate"))
    access.subscribe(lambda: forgotten.append("other"))
    grant_id = grant(store, "download", study_uid="1.1")
    assert access.grants_of("drnkosi")
    revoke(store, grant_id)
    assert access.grants_of("drnkosi")  # still the cached set: nobody said
    generation = access.generation
    access.invalidate()
    assert forgotten == ["gate", "other"]
    assert access.generation == generation + 1
    assert not access.grants_of("drnkosi")


def test_a_set_read_while_grants_changed_is_used_but_not_cached(access, store, monkeypatch):
    grant(store, "download", study_uid="1.1")
    calls = []
    real = grant_store.active_grants_of_user

    def read_while_a_grant_changes(db, user, now):
        calls.append(user)
        rows = real(db, user, now)
        if len(calls) == 1:
            access.invalidate()  # a revocation lands between reading the rows and caching them
        return rows

    monkeypatch.setattr(access_module.grant_store, "active_grants_of_user", read_while_a_grant_changes)
    assert access.grants_of("drnkosi").on_study("PAT-1", "1.1", T0).level is D
    access.grants_of("drnkosi")
    access.grants_of("drnkosi")
    assert len(calls) == 2  # read again once, then cached


def test_an_unreadable_store_raises_store_unavailable(access, store, catalogue, monkeypatch):
    def broken(*_args, **_kwargs):
        raise StoreUnavailable("store unavailable: disk I/O error")

    monkeypatch.setattr(store, "read", broken)
    with pytest.raises(StoreUnavailable):
        access.grants_of("drnkosi")
    with pytest.raises(StoreUnavailable):
        scope_of(access, DOCTOR, "GET", f"/studies/{catalogue['a'].study}")


# == AccessService: other nodes ===========================================================================


def test_poll_notices_a_grant_made_by_another_node_and_invalidates(access, store, db_path):
    forgotten = []
    access.subscribe(lambda: forgotten.append(1))
    access.poll()  # the first poll learns the version
    assert not access.grants_of("drnkosi")
    other_node = Store(sqlite_url(db_path))
    try:
        grant(other_node, "view_only", study_uid="1.1")
    finally:
        other_node.dispose()
    assert not access.grants_of("drnkosi")  # cached, until the poll
    access.poll()
    assert forgotten == [1]
    assert access.grants_of("drnkosi").on_study("PAT-1", "1.1", T0).level is V


def test_poll_without_a_change_keeps_the_cache(access, store):
    forgotten = []
    access.subscribe(lambda: forgotten.append(1))
    access.poll()
    access.poll()
    assert forgotten == []


@pytest.mark.xfail(strict=True, reason=(
    "AccessService.poll() only records the version on its first call: a grant set cached before the first "
    "poll (the poll thread waits GrantPollSeconds before polling) and changed by another node in between "
    "is never dropped. Fix: read the version at construction/start(), or invalidate on the first poll."))
def test_a_set_cached_before_the_first_poll_is_dropped_when_another_node_revoked_since(access, store, db_path):
    grant_id = grant(store, "full", study_uid="1.1")
    assert access.grants_of("drnkosi")  # cached before any poll
    other_node = Store(sqlite_url(db_path))
    try:
        revoke(other_node, grant_id)
    finally:
        other_node.dispose()
    access.poll()
    assert not access.grants_of("drnkosi")


def test_the_poller_drops_caches_when_the_store_cannot_be_read(store, locator, clock, monkeypatch):
    access = AccessService(store, locator, clock=clock, poll_seconds=0.01)
    dropped = threading.Event()
    access.subscribe(dropped.set)

    def down():
        raise StoreUnavailable("store unavailable: disk I/O error")

    monkeypatch.setattr(access, "poll", down)
    access.start()
    try:
        assert dropped.wait(5)
    finally:
        access.stop()


def test_the_poller_survives_an_unexpected_error_and_warns(store, locator, clock, monkeypatch):
    warnings: list[str] = []
    access = AccessService(store, locator, clock=clock, poll_seconds=0.01, warn=warnings.append)
    polled = threading.Event()
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        polled.set()

    monkeypatch.setattr(access, "poll", flaky)
    access.start()
    try:
        assert polled.wait(5)
    finally:
        access.stop()
    assert warnings == ["Gate: grant version poll failed (RuntimeError)"]


# == AccessService: scopes ================================================================================


def test_a_study_route_is_located_and_held_at_the_granted_level(access, store, catalogue):
    grant(store, "annotate", study_uid="1.1")
    a = catalogue["a"]
    scope = scope_of(access, DOCTOR, "GET", f"/studies/{a.study}")
    assert scope.held == Held(N, NEVER)
    assert scope.located == (Located("PAT-1", a.patient, "1.1", a.study),)
    assert (scope.patient_ids, scope.study_uids) == ("PAT-1", "1.1")


@pytest.mark.parametrize("level", ["series", "instances"])
def test_routes_below_a_study_are_held_by_the_studys_grant(access, store, catalogue, level):
    grant(store, "download", study_uid="1.1")
    a = catalogue["a"]
    orthanc_id = a.series if level == "series" else a.instance
    assert scope_of(access, DOCTOR, "GET", f"/{level}/{orthanc_id}/archive").held.level is D


def test_a_patient_grant_holds_on_every_study_of_the_patient(access, store, catalogue):
    grant(store, "view_only", patient_id="PAT-1")
    assert scope_of(access, DOCTOR, "GET", f"/studies/{catalogue['b'].study}").held.level is V
    assert scope_of(access, DOCTOR, "GET", f"/patients/{catalogue['a'].patient}").held.level is V
    assert scope_of(access, DOCTOR, "GET", f"/studies/{catalogue['c'].study}").held == NOTHING


def test_a_study_grant_does_not_hold_on_the_patient_resource(access, store, catalogue):
    grant(store, "full", study_uid="1.1")
    scope = scope_of(access, DOCTOR, "GET", f"/patients/{catalogue['a'].patient}")
    assert scope.held == NOTHING and scope.patient_ids == "PAT-1"


def test_an_unknown_resource_has_no_scope(access, store, catalogue):
    grant(store, "full", patient_id="PAT-1")
    assert scope_of(access, DOCTOR, "GET", "/studies/not-an-id") == NO_SCOPE


def test_an_admin_is_located_but_holds_nothing(access, store, catalogue):
    grant(store, "full", user="root1", study_uid="1.1")
    scope = scope_of(access, ADMIN, "GET", f"/studies/{catalogue['a'].study}")
    assert scope.held == NOTHING and scope.study_uids == "1.1"


def test_anonymous_holds_nothing(access, catalogue):
    assert scope_of(access, ANONYMOUS, "GET", f"/studies/{catalogue['a'].study}").held == NOTHING


def test_routes_naming_no_resource_have_no_scope(access, store, catalogue):
    grant(store, "full", patient_id="PAT-1")
    for path in ("/patients", "/changes", "/tools/find", "/system"):
        assert scope_of(access, DOCTOR, "GET", path) == NO_SCOPE


def test_expiry_follows_the_clock_passed_in(access, store, catalogue, clock):
    grant(store, "download", study_uid="1.1", expires_at=T0 + 10)
    path = f"/studies/{catalogue['a'].study}"
    assert scope_of(access, DOCTOR, "GET", path, now=T0 + 9.999).held == Held(D, T0 + 10)
    assert scope_of(access, DOCTOR, "GET", path, now=T0 + 10).held == NOTHING


def test_a_grant_expired_when_the_set_is_read_is_not_in_it(access, store, catalogue, clock):
    grant(store, "download", study_uid="1.1", expires_at=T0 + 10)
    clock.advance(10)
    assert not access.grants_of("drnkosi")


def test_wado_is_held_by_the_objects_real_study_not_the_study_uid_it_names(access, store, catalogue):
    grant(store, "full", study_uid="2.1")
    # objectUID is an instance of study 1.1; studyUID claims the granted 2.1.
    wado = {"requestType": "WADO", "studyUID": "2.1", "objectUID": "1.1.1.1", "contentType": "image/jpeg"}
    scope = scope_of(access, DOCTOR, "GET", "/wado", wado)
    assert scope.held == NOTHING and scope.study_uids == "1.1"


def test_dicomweb_is_held_by_the_study_in_its_path(access, store, catalogue):
    grant(store, "download", study_uid="1.1")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies/1.1/series/1.1.1").held.level is D
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies/1.2").held == NOTHING
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies/9.9") == NO_SCOPE


def test_a_uid_under_two_patients_must_be_granted_under_both(access, store, core, catalogue):
    core.add_study("PAT-2", "1.1")
    grant(store, "full", patient_id="PAT-1")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies/1.1").held == NOTHING
    grant(store, "view_only", patient_id="PAT-2")
    access.invalidate()
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies/1.1").held.level is V


# -- archives and bulk tools: every resource the request names -------------------------------------------


def test_create_archive_holds_the_lowest_level_over_its_resources(access, store, catalogue):
    grant(store, "full", study_uid="1.1")
    grant(store, "download", study_uid="1.2", expires_at=T0 + 50)
    body = json.dumps([catalogue["a"].study, catalogue["b"].series]).encode()
    scope = scope_of(access, DOCTOR, "POST", "/tools/create-archive", body=body)
    assert scope.held == Held(D, T0 + 50)
    assert scope.study_uids == "1.1,1.2"


def test_create_archive_takes_a_resources_object_and_the_get_form(access, store, catalogue):
    grant(store, "download", patient_id="PAT-1")
    a, b = catalogue["a"], catalogue["b"]
    body = json.dumps({"Resources": [a.instance, b.study], "Synchronous": True}).encode()
    assert scope_of(access, DOCTOR, "POST", "/tools/create-media", body=body).held.level is D
    query = {"resources": f"{a.study}%2C{b.study}"}
    assert scope_of(access, DOCTOR, "GET", "/tools/create-archive", query).held.level is D


def test_an_ungranted_resource_among_granted_ones_holds_nothing(access, store, catalogue):
    grant(store, "full", patient_id="PAT-1")
    body = json.dumps([catalogue["a"].study, catalogue["c"].study]).encode()
    assert scope_of(access, DOCTOR, "POST", "/tools/create-archive", body=body).held == NOTHING


def test_an_unknown_resource_among_known_ones_locates_nothing(access, store, catalogue):
    grant(store, "full", patient_id="PAT-1")
    body = json.dumps([catalogue["a"].study, "not-an-id"]).encode()
    assert scope_of(access, DOCTOR, "POST", "/tools/bulk-delete", body=body) == NO_SCOPE


def test_a_patient_in_an_archive_needs_a_patient_grant(access, store, catalogue):
    grant(store, "full", study_uid="1.1")
    grant(store, "full", study_uid="1.2")
    body = json.dumps([catalogue["a"].patient]).encode()
    assert scope_of(access, DOCTOR, "POST", "/tools/create-archive", body=body).held == NOTHING


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff", b"{}", b'{"Resources": "x"}', b"[1, 2]", b"[]",
                                  b'"a-string"'])
def test_an_archive_body_that_names_no_resources_locates_nothing(access, store, catalogue, body):
    grant(store, "full", patient_id="PAT-1")
    assert scope_of(access, DOCTOR, "POST", "/tools/create-archive", body=body) == NO_SCOPE


@pytest.mark.xfail(strict=True, reason=(
    "_lowest() keeps the `until` of the lowest level only: here download (never expires) on one study and "
    "full until T0+10 on the other give Held(download, NEVER), though at T0+10 the second study holds "
    "nothing. The scope must hold until the earliest `until` over all resources, or a remembered GET "
    "/tools/create-archive?resources=... outlives the grant (see test_gate_service)."))
def test_the_lowest_level_over_several_resources_holds_until_the_earliest_expiry(access, store, catalogue):
    grant(store, "download", study_uid="1.1")
    grant(store, "full", study_uid="1.2", expires_at=T0 + 10)
    body = json.dumps([catalogue["a"].study, catalogue["b"].study]).encode()
    assert scope_of(access, DOCTOR, "POST", "/tools/create-archive", body=body).held == Held(D, T0 + 10)


@pytest.mark.xfail(strict=True, reason=(
    "POST /studies/{id}/merge moves the resources listed in its body (any study, series or instance, "
    "deleting them at their source unless KeepSource) into the study in the path; the gate only locates "
    "the path, so a full grant on one study lets a doctor pull any other patient's images into it and view "
    "them. The body's Resources must be located and held at full too (as for /tools/bulk-*)."))
def test_merge_needs_a_grant_on_the_resources_it_moves(access, store, catalogue):
    grant(store, "full", study_uid="1.1")
    body = json.dumps({"Resources": [catalogue["c"].series]}).encode()
    assert scope_of(access, DOCTOR, "POST", f"/studies/{catalogue['a'].study}/merge", body=body).held == NOTHING


# -- DICOMweb searches: located by what they name --------------------------------------------------------


@pytest.mark.parametrize("query", [{"StudyInstanceUID": "1.1"}, {"0020000D": "1.1"},
                                   {"StudyInstanceUID": "1.1", "PatientID": "PAT-2"}])
def test_a_search_is_located_by_its_study_instance_uid(access, store, catalogue, query):
    grant(store, "view_only", study_uid="1.1")
    scope = scope_of(access, DOCTOR, "GET", "/dicom-web/series", query)
    assert scope.held.level is V and scope.study_uids == "1.1"


@pytest.mark.parametrize("uids", ["1.1,1.2", "1.1%2C1.2", "1.1\\1.2", " 1.1 , 1.2 "])
def test_a_search_for_a_list_of_uids_holds_the_lowest_over_them(access, store, catalogue, uids):
    grant(store, "full", study_uid="1.1")
    grant(store, "download", study_uid="1.2")
    scope = scope_of(access, DOCTOR, "GET", "/dicom-web/studies", {"StudyInstanceUID": uids})
    assert scope.held.level is D and scope.study_uids == "1.1,1.2"


def test_a_search_for_a_list_with_an_ungranted_uid_holds_nothing(access, store, catalogue):
    grant(store, "full", study_uid="1.1")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", {"StudyInstanceUID": "1.1,2.1"}).held == NOTHING


def test_a_search_for_an_unknown_uid_locates_nothing(access, store, catalogue):
    grant(store, "full", study_uid="1.1")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", {"StudyInstanceUID": "1.1,9.9"}) == NO_SCOPE


@pytest.mark.parametrize("key", ["PatientID", "00100020"])
def test_a_search_for_one_exact_patient_id_is_held_by_the_patient_grant(access, store, catalogue, key):
    grant(store, "view_only", patient_id="PAT-1")
    scope = scope_of(access, DOCTOR, "GET", "/dicom-web/studies", {key: "PAT-1"})
    assert scope.held.level is V and scope.located == (Located("PAT-1", ""),)


def test_a_study_grant_does_not_open_a_search_by_patient_id(access, store, catalogue):
    grant(store, "full", study_uid="1.1")
    grant(store, "full", study_uid="1.2")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", {"PatientID": "PAT-1"}).held == NOTHING


@pytest.mark.parametrize("query", [
    {"PatientID": "PAT-*"}, {"PatientID": "PAT-?"}, {"PatientID": "*"}, {"StudyInstanceUID": "1.*"},
    {"StudyInstanceUID": "1.1,1.?"}, {"PatientID": "PAT-1,PAT-2"}, {"PatientID": ""}, {},
    {"PatientName": "NAME^PAT-1"},
])
def test_a_search_with_a_wildcard_or_naming_nothing_exactly_locates_nothing(access, store, catalogue, query):
    grant(store, "full", patient_id="PAT-1")
    grant(store, "full", study_uid="1.1")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", query) == NO_SCOPE


def test_a_wildcard_uid_beside_one_exact_patient_id_is_held_by_the_patient_grant(access, store, catalogue):
    # The plugin matches both keys: what it answers stays within the patient.
    grant(store, "view_only", patient_id="PAT-1")
    query = {"StudyInstanceUID": "*", "PatientID": "PAT-1"}
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", query).held.level is V


@pytest.mark.xfail(strict=True, reason=(
    "The DICOMweb plugin reads every QIDO key Orthanc's ParseTag accepts (keyword, 0020000D, 0020000d, "
    "0020,000D) into one filter per tag, the last argument winning; the gate reads only the first of "
    "StudyInstanceUID/0020000D (PatientID/00100020) it finds, and routes._search_query drops the other "
    "spellings. A second spelling naming an ungranted study (or a wildcard) is then what the plugin searches. "
    "Latent while dicomweb_search is admin only (see test_access.py), live once that is fixed. Fix: refuse "
    "a search naming one tag twice, in any spelling."))
@pytest.mark.parametrize("query", [
    {"StudyInstanceUID": "1.1", "0020000D": "2.1"},
    {"StudyInstanceUID": "1.1", "0020000d": "2.1"},
    {"StudyInstanceUID": "1.1", "0020,000D": "2.1"},
    {"PatientID": "PAT-1", "00100020": "*"},
    {"PatientID": "PAT-1", "0010,0020": "PAT-2"},
], ids=["0020000D", "0020000d", "0020,000D", "00100020 wildcard", "0010,0020"])
def test_a_search_naming_its_tag_twice_is_not_held_by_the_first_spelling(access, store, catalogue, query):
    grant(store, "full", patient_id="PAT-1")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", query).held == NOTHING

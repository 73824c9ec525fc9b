"""Who holds which level on what a request names: ResourceLocator against a fake Orthanc core, and
AccessService with a real store (grant sets, their cache and its invalidation, scopes of requests)."""

from __future__ import annotations

import threading

import pytest

from plugin.errors import StoreUnavailable
from plugin.policies.access import decide
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
from tests.unit.fake_core import orthanc_id as orthanc_id_of

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
          patient_id: str | None = None, study_uid: str | None = None, expires_at: float | None = None,
          orthanc_id: str | None = None) -> int:
    with store.transaction() as db:
        [added] = grant_store.add_grants(db, [Grant(
            subject_user=None if doctor is not None else user, subject_doctor_id=doctor, patient_id=patient_id,
            study_uid=study_uid, orthanc_id=orthanc_id, level=level, expires_at=expires_at, source="manual",
            created_at=T0, created_by="test")])
        return added.id


def revoke(store: Store, grant_id: int) -> None:
    with store.transaction() as db:
        grant_store.revoke_grants(db, [grant_store.grant_by_id(db, grant_id)], T0, "test")


def scope_of(access: AccessService, principal: Principal, method: str, path: str, query=None, now: float = T0):
    return access.scope(principal, classify(method, path, query or {}, {}), now)


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


# == ResourceLocator: a patient's studies, UIDs found missing, and Orthanc's changes =====================

SECONDS = 5.0


@pytest.fixture
def timed(core, clock) -> ResourceLocator:
    """A locator on the test's clock, keeping lists and misses for SECONDS."""
    return ResourceLocator(core, clock=clock, studies_seconds=SECONDS)


def test_the_studies_of_a_patient_are_read_from_the_patient_resource(timed, core, catalogue):
    a, b, c = catalogue["a"], catalogue["b"], catalogue["c"]
    assert timed.studies_of_patient(a.patient) == (a.study, b.study)
    assert timed.studies_of_patient(c.patient) == (c.study,)
    assert core.calls == [("GET", f"/patients/{a.patient}"), ("GET", f"/patients/{c.patient}")]


def test_the_studies_of_a_patient_that_does_not_exist_are_none_and_not_remembered(timed, core, catalogue):
    missing = orthanc_id_of("PAT-9")
    assert timed.studies_of_patient(missing) is None
    new = core.add_study("PAT-9", "9.1")
    assert timed.studies_of_patient(missing) == (new.study,)  # stored since: seen at once
    assert core.count("GET", f"/patients/{missing}") == 2


def test_a_core_refusing_the_patient_gives_none(timed, core, catalogue):
    core.fail.add(f"/patients/{catalogue['a'].patient}")
    assert timed.studies_of_patient(catalogue["a"].patient) is None


def test_the_studies_of_a_patient_are_kept_until_the_clock_passes_studies_seconds(timed, core, catalogue, clock):
    a, b = catalogue["a"], catalogue["b"]
    assert timed.studies_of_patient(a.patient) == (a.study, b.study)
    later = core.add_study("PAT-1", "1.3")  # stored through another node: no NEW_STUDY here
    clock.advance(SECONDS - 0.001)
    assert timed.studies_of_patient(a.patient) == (a.study, b.study)
    assert core.count("GET", f"/patients/{a.patient}") == 1
    clock.advance(0.001)
    assert timed.studies_of_patient(a.patient) == (a.study, b.study, later.study)
    assert core.count("GET", f"/patients/{a.patient}") == 2


def test_the_studies_of_a_patient_are_kept_per_patient(timed, core, catalogue):
    for _ in range(3):
        timed.studies_of_patient(catalogue["a"].patient)
        timed.studies_of_patient(catalogue["c"].patient)
    assert len(core.gets("/patients/")) == 2


def test_a_new_study_of_the_patient_drops_their_list_at_once(timed, core, catalogue):
    a, b = catalogue["a"], catalogue["b"]
    timed.studies_of_patient(a.patient)
    new = core.add_study("PAT-1", "1.3")
    timed.study_added(new.study)
    assert timed.studies_of_patient(a.patient) == (a.study, b.study, new.study)


def test_a_new_study_of_another_patient_keeps_the_list(timed, core, catalogue):
    a = catalogue["a"]
    timed.studies_of_patient(a.patient)
    timed.study_added(core.add_study("PAT-2", "2.2").study)
    timed.studies_of_patient(a.patient)
    assert core.count("GET", f"/patients/{a.patient}") == 1


def test_a_new_study_that_cannot_be_located_drops_nothing_and_does_not_fail(timed, core, catalogue):
    a = catalogue["a"]
    timed.studies_of_patient(a.patient)
    timed.study_added("00000000-00000000-00000000-00000000-00000000")
    timed.studies_of_patient(a.patient)
    assert core.count("GET", f"/patients/{a.patient}") == 1


def test_a_deletion_forgets_every_cache(timed, core, catalogue):
    a = catalogue["a"]
    timed.studies_of_patient(a.patient)
    timed.by_orthanc_id("instance", a.instance)
    timed.by_uid("study", "1.1")
    timed.by_uid("study", "9.9.9")
    core.calls.clear()
    timed.resource_deleted()
    timed.studies_of_patient(a.patient)
    timed.by_orthanc_id("instance", a.instance)
    timed.by_uid("study", "1.1")
    timed.by_uid("study", "9.9.9")
    assert core.count("GET", f"/patients/{a.patient}") == 1
    assert core.count("GET", f"/instances/{a.instance}") == 1
    assert core.count("POST", "/tools/lookup") == 2


def test_a_deleted_study_is_no_longer_located_after_the_deletion(timed, core, catalogue):
    b = catalogue["b"]
    assert timed.by_orthanc_id("study", b.study) is not None
    assert timed.by_uid("study", "1.2") != ()
    core.remove_study(b)
    timed.resource_deleted()
    assert timed.by_orthanc_id("study", b.study) is None
    assert timed.by_uid("study", "1.2") == ()
    assert timed.studies_of_patient(b.patient) == (catalogue["a"].study,)


def test_a_uid_found_missing_is_not_looked_up_again_for_studies_seconds(timed, core, catalogue, clock):
    assert timed.by_uid("study", "9.9.9") == ()
    clock.advance(SECONDS - 0.001)
    assert timed.by_uid("study", "9.9.9") == ()
    assert core.count("POST", "/tools/lookup") == 1
    clock.advance(0.001)
    assert timed.by_uid("study", "9.9.9") == ()
    assert core.count("POST", "/tools/lookup") == 2


def test_a_uid_missing_at_one_level_is_still_looked_up_at_another(timed, core, catalogue):
    assert timed.by_uid("series", "1.1") == ()
    assert timed.by_uid("study", "1.1") != ()
    assert core.count("POST", "/tools/lookup") == 2


def test_a_new_study_ends_every_miss_at_once(timed, core, catalogue):
    assert timed.by_uid("study", "9.9.9") == ()
    new = core.add_study("PAT-2", "9.9.9")
    timed.study_added(new.study)
    assert timed.by_uid("study", "9.9.9") == (Located("PAT-2", new.patient, "9.9.9", new.study),)
    assert core.count("POST", "/tools/lookup") == 2


def test_a_lookup_refused_by_the_core_is_not_remembered_as_a_miss(timed, core, catalogue):
    core.fail.add("/tools/lookup")
    assert timed.by_uid("study", "1.1") == ()
    core.fail.clear()
    assert timed.by_uid("study", "1.1") != ()


def test_the_lists_and_misses_are_bounded(core, catalogue, clock):
    locator = ResourceLocator(core, max_entries=2, clock=clock)
    patients = [catalogue[k].patient for k in "ac"] + [orthanc_id_of("PAT-3")]
    core.add_study("PAT-3", "3.1")
    for patient in patients:
        locator.studies_of_patient(patient)
    locator.studies_of_patient(patients[0])  # dropped when the third came in
    assert core.count("GET", f"/patients/{patients[0]}") == 2
    for uid in ("9.1", "9.2", "9.3", "9.1"):
        locator.by_uid("study", uid)
    assert core.count("POST", "/tools/lookup") == 4


# == AccessService: grant sets ===========================================================================


def test_grants_of_reads_the_users_patient_and_study_grants(access, store):
    grant(store, "download", patient_id="PAT-1")
    grant(store, "full", study_uid="2.1", expires_at=T0 + 60)
    grant(store, "full", user="someone-else", study_uid="1.1")
    grants = access.grants_of("drnkosi")
    assert grants.on_patient("PAT-1", T0) == Held(D, NEVER)
    assert grants.on_study("PAT-2", "2.1", T0) == Held(F, T0 + 60)
    assert grants.on_study("PAT-1", "1.1", T0) == Held(D, NEVER)  # the patient grant, not someone else's


def test_grants_of_keeps_the_orthanc_ids_recorded_on_study_grants(access, store, catalogue):
    grant(store, "download", study_uid="1.2", orthanc_id=catalogue["b"].study)
    grant(store, "download", study_uid="2.1")  # made before ids were recorded
    grant(store, "download", patient_id="PAT-1", orthanc_id=catalogue["a"].patient)
    grant(store, "download", user="someone-else", study_uid="1.1", orthanc_id=catalogue["a"].study)
    grants = access.grants_of("drnkosi")
    assert grants.study_ids == {"1.2": catalogue["b"].study}
    assert grants.study_uids(T0) == {"1.2", "2.1"}


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
    access.poll()  # the first poll learns the version (and drops what was cached before it)
    forgotten.clear()
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
    access.poll()
    access.subscribe(lambda: forgotten.append(1))
    grant(store, "download", study_uid="1.1")  # on this node: its own invalidate() is not called here
    assert access.grants_of("drnkosi")
    access.poll()  # the version changed: dropped
    assert forgotten == [1]
    cached = access.grants_of("drnkosi")
    access.poll()
    access.poll()
    assert forgotten == [1]
    assert access.grants_of("drnkosi") is cached


def test_the_first_poll_invalidates(access, store):
    forgotten = []
    access.subscribe(lambda: forgotten.append(1))
    access.poll()
    assert forgotten == [1]


def test_start_polls_once_before_the_thread_starts(store, locator, clock, db_path):
    access = AccessService(store, locator, clock=clock, poll_seconds=3600)  # the thread would wait an hour
    grant_id = grant(store, "full", study_uid="1.1")
    assert access.grants_of("drnkosi")  # cached before the node starts serving
    other_node = Store(sqlite_url(db_path))
    try:
        revoke(other_node, grant_id)
    finally:
        other_node.dispose()
    access.start()
    try:
        assert not access.grants_of("drnkosi")
    finally:
        access.stop()


def test_start_warns_and_still_polls_when_the_store_cannot_be_read_at_first(store, locator, clock, monkeypatch):
    warnings: list[str] = []
    access = AccessService(store, locator, clock=clock, poll_seconds=0.01, warn=warnings.append)
    polled = threading.Event()
    calls = []

    def down_then_up():
        calls.append(1)
        if len(calls) == 1:
            raise StoreUnavailable("store unavailable: disk I/O error")
        polled.set()

    monkeypatch.setattr(access, "poll", down_then_up)
    access.start()
    try:
        assert polled.wait(5)
    finally:
        access.stop()
    assert len(warnings) == 1 and warnings[0].startswith("Gate: could not read the grant version at start")


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
        if len(calls) == 2:  # the first poll of the thread (start() polled once before it)
            raise RuntimeError("boom")
        if len(calls) > 2:
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


# -- archives: `GET /tools/create-archive?resources=` (1.12), every resource it lists ----------------


def test_create_archive_holds_the_lowest_level_over_its_resources(access, store, catalogue):
    grant(store, "full", study_uid="1.1")
    grant(store, "download", study_uid="1.2", expires_at=T0 + 50)
    query = {"resources": f"{catalogue['a'].study},{catalogue['b'].series}"}
    scope = scope_of(access, DOCTOR, "GET", "/tools/create-archive", query)
    assert scope.held == Held(D, T0 + 50)
    assert scope.study_uids == "1.1,1.2"


@pytest.mark.parametrize("path", ["/tools/create-archive", "/tools/create-media", "/tools/create-media-extended"])
def test_the_get_form_takes_lists_of_any_level(access, store, catalogue, path):
    grant(store, "download", patient_id="PAT-1")
    a, b = catalogue["a"], catalogue["b"]
    scope = scope_of(access, DOCTOR, "GET", path, {"resources": f"{a.instance},{b.study}"})
    assert scope.held.level is D and scope.study_uids == "1.1,1.2"
    # Orthanc hands query values over as sent, to the gate and to its own handler alike: an
    # encoded comma is no separator for either, so such a list names nothing known.
    assert scope_of(access, DOCTOR, "GET", path, {"resources": f"{a.instance}%2C{b.study}"}) == NO_SCOPE


def test_an_ungranted_resource_among_granted_ones_holds_nothing(access, store, catalogue):
    grant(store, "full", patient_id="PAT-1")
    query = {"resources": f"{catalogue['a'].study},{catalogue['c'].study}"}
    assert scope_of(access, DOCTOR, "GET", "/tools/create-archive", query).held == NOTHING


def test_an_unknown_resource_among_known_ones_locates_nothing(access, store, catalogue):
    grant(store, "full", patient_id="PAT-1")
    query = {"resources": f"{catalogue['a'].study},not-an-id"}
    assert scope_of(access, DOCTOR, "GET", "/tools/create-archive", query) == NO_SCOPE


def test_a_patient_in_an_archive_needs_a_patient_grant(access, store, catalogue):
    grant(store, "full", study_uid="1.1")
    grant(store, "full", study_uid="1.2")
    query = {"resources": catalogue["a"].patient}
    assert scope_of(access, DOCTOR, "GET", "/tools/create-archive", query).held == NOTHING


@pytest.mark.parametrize("query", [{}, {"resources": ""}, {"resources": ","}, {"resources": "%2C"},
                                   {"Resources": "x"}, {"resource": "x"}])
def test_an_archive_listing_no_resources_locates_nothing(access, store, catalogue, query):
    grant(store, "full", patient_id="PAT-1")
    query = {k: v.replace("x", catalogue["a"].study) for k, v in query.items()}
    assert scope_of(access, DOCTOR, "GET", "/tools/create-archive", query) == NO_SCOPE


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/tools/create-archive"), ("POST", "/tools/create-media"), ("POST", "/tools/create-media-extended"),
    ("POST", "/tools/bulk-content"), ("POST", "/tools/bulk-modify"), ("POST", "/tools/bulk-anonymize"),
    ("POST", "/tools/bulk-delete"), ("POST", "/studies/{study}/merge"), ("POST", "/instances/{instance}/export"),
])
def test_requests_naming_resources_in_their_body_are_admin_only_whatever_is_held(access, store, catalogue,
                                                                                 method, path):
    """The request filter is never given the body: these are refused to every doctor, even one holding
    full on the patient (and on whatever the query string lists)."""
    grant(store, "full", patient_id="PAT-1")
    a = catalogue["a"]
    route = classify(method, path.format(study=a.study, instance=a.instance), {"resources": a.study}, {})
    scope = access.scope(DOCTOR, route, T0)
    decision = decide(DOCTOR, route, scope.held.level)
    assert not decision.allowed and decision.reason == "admin only"


def test_the_lowest_level_over_several_resources_holds_until_the_earliest_expiry(access, store, catalogue):
    grant(store, "download", study_uid="1.1")
    grant(store, "full", study_uid="1.2", expires_at=T0 + 10)
    query = {"resources": f"{catalogue['a'].study},{catalogue['b'].study}"}
    assert scope_of(access, DOCTOR, "GET", "/tools/create-archive", query).held == Held(D, T0 + 10)


def test_the_earliest_expiry_counts_among_resources_held_at_the_same_level(access, store, catalogue):
    grant(store, "download", study_uid="1.1", expires_at=T0 + 30)
    grant(store, "download", study_uid="1.2", expires_at=T0 + 20)
    query = {"resources": f"{catalogue['a'].study},{catalogue['b'].study}"}
    assert scope_of(access, DOCTOR, "GET", "/tools/create-archive", query).held == Held(D, T0 + 20)
    query = {"resources": f"{catalogue['b'].study},{catalogue['a'].study}"}
    assert scope_of(access, DOCTOR, "GET", "/tools/create-archive", query).held == Held(D, T0 + 20)


# -- /{level}/{id}/patient answers the patient resource --------------------------------------------------


@pytest.mark.parametrize("level", ["studies", "series", "instances"])
def test_the_patient_of_a_resource_needs_a_patient_grant(access, store, catalogue, level):
    grant(store, "full", study_uid="1.1")
    a = catalogue["a"]
    orthanc_id = {"studies": a.study, "series": a.series, "instances": a.instance}[level]
    scope = scope_of(access, DOCTOR, "GET", f"/{level}/{orthanc_id}/patient")
    assert scope.held == NOTHING
    assert scope.located == (Located("PAT-1", a.patient),)
    assert scope_of(access, DOCTOR, "GET", f"/{level}/{orthanc_id}").held.level is F  # the study itself
    grant(store, "view_only", patient_id="PAT-1")
    access.invalidate()
    assert scope_of(access, DOCTOR, "GET", f"/{level}/{orthanc_id}/Patient").held.level is V


@pytest.mark.parametrize("sub", ["study", "series", "module-patient"])
def test_other_sub_routes_are_held_by_the_study(access, store, catalogue, sub):
    grant(store, "full", study_uid="1.1")
    assert scope_of(access, DOCTOR, "GET", f"/instances/{catalogue['a'].instance}/{sub}").held.level is F


# -- DICOMweb searches: located by what they name --------------------------------------------------------


@pytest.mark.parametrize("query", [{"StudyInstanceUID": "1.1"}, {"0020000D": "1.1"},
                                   {"StudyInstanceUID": "1.1", "PatientID": "PAT-2"}])
def test_a_search_is_located_by_its_study_instance_uid(access, store, catalogue, query):
    grant(store, "view_only", study_uid="1.1")
    scope = scope_of(access, DOCTOR, "GET", "/dicom-web/series", query)
    assert scope.held.level is V and scope.study_uids == "1.1"


def test_a_search_for_a_list_of_uids_holds_the_lowest_over_them(access, store, catalogue):
    grant(store, "full", study_uid="1.1")
    grant(store, "download", study_uid="1.2")
    scope = scope_of(access, DOCTOR, "GET", "/dicom-web/studies", {"StudyInstanceUID": "1.1,1.2"})
    assert scope.held.level is D and scope.study_uids == "1.1,1.2"


# The DICOMweb plugin drops backslashes and splits on a literal "%2C" of a value it is handed
# undecoded: lists spelt so are not read the same way by both, and locate nothing.
@pytest.mark.parametrize("uids", ["1.1%2C1.2", "1.1\\1.2", " 1.1 , 1.2 ", "1.1,,1.2 "])
def test_a_list_of_uids_in_any_other_spelling_locates_nothing(access, store, catalogue, uids):
    grant(store, "full", study_uid="1.1")
    grant(store, "download", study_uid="1.2")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", {"StudyInstanceUID": uids}) == NO_SCOPE


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


def test_a_wildcard_uid_beside_one_exact_patient_id_locates_nothing(access, store, catalogue):
    # The search is refused before it is located (policies/qido.py: a StudyInstanceUID must be UIDs).
    grant(store, "view_only", patient_id="PAT-1")
    query = {"StudyInstanceUID": "*", "PatientID": "PAT-1"}
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", query) == NO_SCOPE


# The DICOMweb plugin reads every QIDO key Orthanc's ParseTag accepts (keyword, 0020000D, 0020000d,
# 0020,000D) into one filter per tag, the last one winning: a search naming a tag twice holds nothing.
@pytest.mark.parametrize("query", [
    {"StudyInstanceUID": "1.1", "0020000D": "2.1"},
    {"StudyInstanceUID": "1.1", "0020000d": "2.1"},
    {"StudyInstanceUID": "1.1", "0020,000D": "2.1"},
    {"0020000D": "2.1", "StudyInstanceUID": "1.1"},
    {"StudyInstanceUID": "1.1", "0020000D": "1.1"},  # even the same study twice
    {"PatientID": "PAT-1", "00100020": "*"},
    {"PatientID": "PAT-1", "0010,0020": "PAT-2"},
    {"PatientID": "PAT-1", "patientid": "PAT-1"},
    {"StudyInstanceUID": "*", "PatientID": "PAT-1", "00100020": "PAT-2"},
], ids=["0020000D", "0020000d", "0020,000D", "tag first", "same study", "00100020 wildcard", "0010,0020",
        "same patient", "wildcard uid and patient twice"])
def test_a_search_naming_its_tag_twice_holds_nothing(access, store, catalogue, query):
    grant(store, "full", patient_id="PAT-1")
    grant(store, "full", study_uid="1.1")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", query) == NO_SCOPE


@pytest.mark.parametrize("spelling", ["StudyInstanceUID", "0020000D", "0020000d", "0020,000D", "0020-000d"])
def test_a_search_by_any_one_spelling_of_the_study_uid_is_located(access, store, catalogue, spelling):
    grant(store, "view_only", study_uid="1.1")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/instances", {spelling: "1.1"}).held.level is V


@pytest.mark.parametrize("spelling", ["PatientID", "00100020", "0010,0020", "0010-0020"])
def test_a_search_by_any_one_spelling_of_the_patient_id_is_located(access, store, catalogue, spelling):
    grant(store, "view_only", patient_id="PAT-1")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/series", {spelling: "PAT-1"}).held.level is V


# The plugin ignores keys its dictionary lookup does not know ("patientid": keywords are
# case-sensitive) and reads others the gate does not ("10,20" is PatientID to DCMTK's sscanf): a
# search with a key the gate cannot read exactly as the plugin does is located nowhere.
@pytest.mark.parametrize("spelling", ["patientid", "PATIENTID", " PatientID", "10,20", "0x10,0x20", "10010,20",
                                      "Patient%49D", "(0010,0020)"])
def test_a_search_by_a_key_the_plugin_reads_otherwise_locates_nothing(access, store, catalogue, spelling):
    grant(store, "view_only", patient_id="PAT-1")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/series", {spelling: "PAT-1"}) == NO_SCOPE


# -- a search by PatientID, which the DICOMweb plugin matches without regard to case -----------------------


def test_patient_ids_like_asks_one_case_insensitive_find_at_patient_level(locator, core, catalogue):
    core.add_study("pat-1", "3.1")
    assert locator.patient_ids_like("PAT-1") == {"PAT-1", "pat-1"}
    assert core.finds[-1] == {"Level": "Patient", "Expand": True, "CaseSensitive": False,
                              "Query": {"PatientID": "PAT-1"}}
    assert locator.patient_ids_like("PAT-2") == {"PAT-2"}
    assert locator.patient_ids_like("PAT-9") == set()


def test_patient_ids_like_is_empty_when_the_core_refuses(locator, core, catalogue):
    core.fail.add("/tools/find")
    assert locator.patient_ids_like("PAT-1") == set()


@pytest.mark.parametrize("asked", ["PAT-1", "pat-1"])
def test_a_search_by_a_patient_id_another_differs_from_by_case_alone_locates_nothing(access, store, core,
                                                                                     catalogue, asked):
    core.add_study("pat-1", "3.1")  # another person
    grant(store, "full", patient_id="PAT-1")
    grant(store, "full", patient_id="pat-1")  # even holding both: the gate cannot tell which the plugin answers
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", {"PatientID": asked}) == NO_SCOPE


def test_a_search_by_a_patient_id_of_no_patient_locates_nothing(access, store, catalogue):
    grant(store, "full", patient_id="PAT-9")  # granted before the patient's images arrived
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", {"PatientID": "PAT-9"}) == NO_SCOPE


def test_a_search_by_patient_id_locates_nothing_when_the_core_refuses_the_find(access, store, core, catalogue):
    grant(store, "full", patient_id="PAT-1")
    core.fail.add("/tools/find")
    assert scope_of(access, DOCTOR, "GET", "/dicom-web/studies", {"PatientID": "PAT-1"}) == NO_SCOPE


def test_a_search_by_study_uid_asks_no_find(access, store, core, catalogue):
    grant(store, "full", study_uid="1.1")
    scope_of(access, DOCTOR, "GET", "/dicom-web/studies", {"StudyInstanceUID": "1.1", "PatientID": "PAT-1"})
    assert core.count("POST", "/tools/find") == 0


def test_after_stop_grants_are_read_from_the_store_every_time(access, store):
    # Orthanc still serves requests for a moment after ORTHANC_STOPPED stops the poller: a grant
    # revoked meanwhile (on another node) must still apply, so nothing is cached any more.
    added = grant(store, "full", study_uid="1.1")
    assert access.grants_of("drnkosi").study_uids(T0)
    access.stop()
    assert access.grants_of("drnkosi").study_uids(T0)
    revoke(store, added)
    assert not access.grants_of("drnkosi").study_uids(T0)

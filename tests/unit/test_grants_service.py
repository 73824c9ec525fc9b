"""GrantService with a fake Orthanc core and a real store: what a grant request may name, the error
each mistake gets, all-or-nothing writes, audit rows and the gate's caches dropped on every change."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from plugin.errors import BadRequest, Conflict, Forbidden, GateError, NotFound
from plugin.policies.types import Principal
from plugin.services.access import AccessService, ResourceLocator
from plugin.services.grants import MAX_BULK, GrantService
from plugin.services.users import Actor
from plugin.store.models import Doctor, Grant
from tests.unit.accounts_support import add_user, disable
from tests.unit.conftest import T0
from tests.unit.fake_core import FakeCore, orthanc_id

ACTOR = Actor("root1", frozenset({"admin"}), "session", ip="10.0.0.1")
LATER = "2030-01-31T17:00:00+02:00"
LATER_EPOCH = datetime(2030, 1, 31, 15, 0, tzinfo=UTC).timestamp()


class Setup:
    def __init__(self, store, clock) -> None:
        self.store, self.clock = store, clock
        self.core = FakeCore()
        self.a = self.core.add_study("PAT-1", "1.1", modality="CT")
        self.b = self.core.add_study("PAT-1", "1.2", modality="MR")
        self.c = self.core.add_study("PAT-2", "2.1", modality="MR")
        self.access = AccessService(store, ResourceLocator(self.core), clock=clock)
        self.invalidated = 0
        self.access.subscribe(self._count_invalidation)
        self.audited: list = []
        self.service = GrantService(store, self.access, self.core, self._audit)
        for username in ("drnkosi", "drdlamini", "gone"):
            add_user(store, T0, username, ["referring_doctor"], None, audit=lambda _r: True, actor="test")
        disable(store, T0, "gone", audit=lambda _r: True, actor="test")
        with store.transaction() as db:
            self.doctor_id = _doctor(db, "MP0000001", "drdlamini").id
            self.untied_doctor_id = _doctor(db, "MP0000002", None).id
            self.gone_doctor_id = _doctor(db, "MP0000003", "gone").id

    def _count_invalidation(self) -> None:
        self.invalidated += 1

    def _audit(self, record) -> bool:
        self.audited.append(record)
        return True

    def rows(self) -> list[Grant]:
        with self.store.read() as db:
            return list(db.execute(select(Grant).order_by(Grant.id)).scalars())

    def count(self) -> int:
        with self.store.read() as db:
            return db.execute(select(func.count()).select_from(Grant)).scalar_one()

    def create(self, **data):
        return self.service.create(ACTOR, self.clock(), {"user": "drnkosi", "level": "download", **data})

    def bulk(self, **data):
        return self.service.bulk(ACTOR, self.clock(), {"user": "drnkosi", "level": "view_only", **data})


def _doctor(db, hpcsa: str, username: str | None) -> Doctor:
    doctor = Doctor(hpcsa_number=hpcsa, last_name="Doctor", username=username, created_at=T0, updated_at=T0)
    db.add(doctor)
    db.flush()
    return doctor


@pytest.fixture
def env(store, clock) -> Setup:
    return Setup(store, clock)


def assert_nothing_changed(env: Setup) -> None:
    assert env.count() == 0 and env.audited == [] and env.invalidated == 0


# -- one grant ---------------------------------------------------------------------------------------------


def test_a_patient_grant_is_written_audited_and_reaches_the_gate(env):
    view = env.create(patient_id="PAT-1", expires_at=LATER)
    [row] = env.rows()
    assert (row.subject_user, row.patient_id, row.study_uid, row.level, row.expires_at, row.source, row.created_by) \
        == ("drnkosi", "PAT-1", None, "download", LATER_EPOCH, "manual", "root1")
    assert view["id"] == row.id and view["expires_at"] == "2030-01-31T15:00:00Z" and view["revoked_at"] is None
    assert env.invalidated == 1
    [record] = env.audited
    assert (record.route_class, record.action, record.outcome, record.actor, record.patient_id, record.source_ip) \
        == ("grant", "grant.create", "success", "root1", "PAT-1", "10.0.0.1")
    assert json.loads(record.detail)["grants"] == [view]
    assert env.access.grants_of("drnkosi").on_patient("PAT-1", T0).level.label == "download"


def test_a_patient_grant_is_checked_by_the_hash_of_its_patient_id_and_keeps_that_id(env):
    env.create(patient_id="PAT-1")
    [row] = env.rows()
    assert (row.patient_id, row.orthanc_id) == ("PAT-1", orthanc_id("PAT-1")) == ("PAT-1", env.a.patient)
    assert env.core.calls == [("GET", f"/patients/{orthanc_id('PAT-1')}")]  # no /tools/lookup, no search


def test_a_patient_grant_does_not_reach_a_patient_whose_id_differs_in_case(env):
    with pytest.raises(NotFound, match="No patient with PatientID 'pat-1'"):
        env.create(patient_id="pat-1")
    assert_nothing_changed(env)
    assert env.core.calls == [("GET", f"/patients/{orthanc_id('pat-1')}")]


def test_a_study_grant_by_uid_is_stored_by_uid_with_the_studys_orthanc_id(env):
    env.create(study_uid="1.2", level="full")
    [row] = env.rows()
    assert (row.patient_id, row.study_uid, row.orthanc_id, row.level) == (None, "1.2", env.b.study, "full")
    [record] = env.audited
    assert (record.route_class, record.study_uid) == ("grant", "1.2")


def test_a_study_uid_under_two_patients_is_granted_by_uid_without_an_orthanc_id(env):
    env.core.add_study("PAT-2", "1.2")  # the same StudyInstanceUID under another patient
    env.create(study_uid="1.2")
    [row] = env.rows()
    assert (row.study_uid, row.orthanc_id) == ("1.2", None)
    assert env.audited[0].patient_id == "PAT-1,PAT-2"


def test_the_recorded_study_id_reaches_the_grant_set(env):
    env.create(study_uid="1.2")
    env.create(patient_id="PAT-2")
    grants = env.access.grants_of("drnkosi")
    assert grants.study_ids == {"1.2": env.b.study}  # patient grants' ids are not study ids


def test_a_study_grant_by_orthanc_id_is_stored_by_its_uid(env):
    env.create(orthanc_id=env.b.study)
    [row] = env.rows()
    assert (row.patient_id, row.study_uid, row.orthanc_id) == (None, "1.2", env.b.study)


def test_a_patient_grant_by_orthanc_id_is_stored_by_its_patient_id(env):
    env.create(orthanc_id=env.c.patient)
    [row] = env.rows()
    assert (row.patient_id, row.study_uid, row.orthanc_id) == ("PAT-2", None, env.c.patient)


def test_a_grant_to_a_doctor_names_the_doctor(env):
    env.service.create(ACTOR, T0, {"doctor": env.doctor_id, "study_uid": "1.1", "level": "report"})
    [row] = env.rows()
    assert (row.subject_user, row.subject_doctor_id) == (None, env.doctor_id)
    assert env.access.grants_of("drdlamini").on_study("PAT-1", "1.1", T0).level.label == "report"


def test_a_grant_to_a_doctor_without_a_login_is_allowed(env):
    env.service.create(ACTOR, T0, {"doctor": env.untied_doctor_id, "patient_id": "PAT-1", "level": "view_only"})
    assert env.count() == 1


@pytest.mark.parametrize(("expires_at", "epoch"), [
    (LATER, LATER_EPOCH), ("2030-01-31T15:00:00Z", LATER_EPOCH), ("2030-01-31T15:00:00+00:00", LATER_EPOCH),
    (None, None),
])
def test_expiry_is_stored_as_an_instant(env, expires_at, epoch):
    env.create(patient_id="PAT-1", expires_at=expires_at)
    assert env.rows()[0].expires_at == epoch


# -- every mistake: its error, a clear message, and nothing written -------------------------------------------


MISTAKES = [
    # (what the request says, error, words the message must hold)
    ({"patient_id": "NOPE"}, NotFound, "No patient with PatientID 'NOPE'"),
    ({"study_uid": "9.9.9"}, NotFound, "No study with StudyInstanceUID '9.9.9'"),
    ({"orthanc_id": "00000000-00000000-00000000-00000000-00000000"}, NotFound, "No patient or study with Orthanc id"),
    ({"patient_id": "PAT-*"}, BadRequest, "no * ? or \\"),
    ({"patient_id": "PAT-1", "study_uid": "1.1"}, BadRequest, "exactly one of patient_id, study_uid or orthanc_id"),
    ({"patient_id": ""}, BadRequest, "exactly one of patient_id, study_uid or orthanc_id"),
    ({"patient_id": 5}, BadRequest, "patient_id must be a DICOM identifier"),
    ({"patient_id": "P" * 65}, BadRequest, "at most 64 characters"),
    ({"patient_id": "PAT-1", "level": "owner"}, BadRequest,
     "Level must be one of view_only, download, annotate, report, share, full"),
    ({"patient_id": "PAT-1", "level": "FULL"}, BadRequest, "Level must be one of"),
    ({"patient_id": "PAT-1", "level": None}, BadRequest, "Level must be one of"),
    ({"patient_id": "PAT-1", "expires_at": "next tuesday"}, BadRequest,
     "expires_at 'next tuesday' is not an ISO 8601 date and time"),
    ({"patient_id": "PAT-1", "expires_at": "2030-13-01T00:00:00Z"}, BadRequest, "is not an ISO 8601"),
    ({"patient_id": "PAT-1", "expires_at": "2030-01-31T17:00:00"}, BadRequest, "needs a time zone"),
    ({"patient_id": "PAT-1", "expires_at": "2030-01-31"}, BadRequest, "needs a time zone"),
    ({"patient_id": "PAT-1", "expires_at": "2020-01-01T00:00:00Z"}, BadRequest, "expires_at is in the past"),
    ({"patient_id": "PAT-1", "expires_at": "2023-11-14T22:13:20Z"}, BadRequest, "in the past"),  # == now
    ({"patient_id": "PAT-1", "expires_at": 1900000000}, BadRequest, "expires_at must be an ISO 8601"),
    ({"patient_id": "PAT-1", "user": "gone"}, Conflict, "User 'gone' is disabled"),
    ({"patient_id": "PAT-1", "user": "nobody"}, NotFound, "No user 'nobody'"),
    ({"patient_id": "PAT-1", "user": ""}, BadRequest, "User must be a username"),
    ({"patient_id": "PAT-1", "doctor": 1}, BadRequest, 'exactly one subject: "user" (a username) or "doctor"'),
    ({"patient_id": "PAT-1", "user": None}, BadRequest, "exactly one subject"),
    ({"patient_id": "PAT-1", "user": None, "doctor": "1"}, BadRequest, "Doctor must be a doctor id (a number)"),
    ({"patient_id": "PAT-1", "user": None, "doctor": True}, BadRequest, "Doctor must be a doctor id"),
    ({"patient_id": "PAT-1", "user": None, "doctor": 999}, NotFound, "No doctor 999"),
    ({"patient_id": "PAT-1", "colour": "red"}, BadRequest, "Unknown field 'colour'"),
]


@pytest.mark.parametrize(("data", "error", "words"), MISTAKES, ids=[f"{e.__name__}: {w}" for _d, e, w in MISTAKES])
def test_a_bad_grant_request_is_refused_clearly_and_writes_nothing(env, data, error, words):
    with pytest.raises(GateError) as raised:
        env.create(**data)
    assert type(raised.value) is error
    assert words in raised.value.message
    assert_nothing_changed(env)


@pytest.mark.parametrize("which", ["series", "instance"])
def test_an_orthanc_id_of_a_series_or_instance_is_a_bad_request(env, which):
    with pytest.raises(BadRequest, match="Grants name a patient or a study; this Orthanc id is a series or an "
                                         "instance"):
        env.create(orthanc_id=getattr(env.a, which))
    assert_nothing_changed(env)


def test_a_doctor_whose_login_is_disabled_is_a_conflict(env):
    with pytest.raises(Conflict, match="Doctor .*'s user 'gone' is disabled"):
        env.service.create(ACTOR, T0, {"doctor": env.gone_doctor_id, "patient_id": "PAT-1", "level": "full"})
    assert_nothing_changed(env)


def test_an_orthanc_core_that_refuses_lookups_gives_not_found_and_writes_nothing(env):
    env.core.fail.add("/tools/lookup")
    with pytest.raises(NotFound):
        env.create(study_uid="1.1")
    assert_nothing_changed(env)


# -- bulk: by a list ----------------------------------------------------------------------------------------


def test_bulk_by_items_writes_every_grant_in_one_audited_change(env):
    views = env.bulk(items=[{"patient_id": "PAT-2"}, {"study_uid": "1.1"}, {"orthanc_id": env.b.study}],
                     expires_at=LATER)
    assert [(r.patient_id, r.study_uid, r.source, r.expires_at) for r in env.rows()] == [
        ("PAT-2", None, "bulk", LATER_EPOCH), (None, "1.1", "bulk", LATER_EPOCH), (None, "1.2", "bulk", LATER_EPOCH)]
    assert [r.orthanc_id for r in env.rows()] == [env.c.patient, env.a.study, env.b.study]
    assert len(views) == 3 and env.invalidated == 1
    [record] = env.audited
    assert (record.route_class, record.action, record.patient_id, record.study_uid) == \
        ("grant", "grant.bulk", "PAT-1,PAT-2", "1.1,1.2")  # study grants name their patient too
    assert "on 3 patients or studies" in record.reason


@pytest.mark.parametrize(("item", "error", "words"), [
    ({"study_uid": "9.9.9"}, NotFound, "Item 2: No study with StudyInstanceUID '9.9.9'"),
    ({"patient_id": "NOPE"}, NotFound, "Item 2: No patient with PatientID 'NOPE'"),
    ({"orthanc_id": "SERIES"}, BadRequest, "Item 2: Grants name a patient or a study"),
    ({"patient_id": "PAT-1", "study_uid": "1.1"}, BadRequest, "Item 2: Name exactly one of"),
    ({"colour": "red"}, BadRequest, "Item 2: Unknown field 'colour'"),
    ("PAT-1", BadRequest, "Item 2 must be a JSON object"),
])
def test_one_bad_item_writes_nothing_and_is_named(env, item, error, words):
    if item == {"orthanc_id": "SERIES"}:
        item = {"orthanc_id": env.a.series}
    with pytest.raises(GateError) as raised:
        env.bulk(items=[{"patient_id": "PAT-1"}, item, {"study_uid": "2.1"}])
    assert type(raised.value) is error and words in raised.value.message
    assert_nothing_changed(env)


def test_a_bulk_grant_to_a_disabled_user_writes_nothing(env):
    with pytest.raises(Conflict):
        env.bulk(user="gone", items=[{"patient_id": "PAT-1"}, {"study_uid": "2.1"}])
    assert_nothing_changed(env)


@pytest.mark.parametrize(("data", "words"), [
    ({}, 'Give either "items"'),
    ({"items": [{"patient_id": "PAT-1"}], "query": {"PatientID": "PAT-1"}}, 'Give either "items"'),
    ({"items": []}, '"items" must be a list of 1 to 10000 objects'),
    ({"items": {"patient_id": "PAT-1"}}, '"items" must be a list'),
    ({"items": [{"patient_id": "PAT-1"}], "level": "root"}, "Level must be one of"),
    ({"items": [{"patient_id": "PAT-1"}], "expires_at": "2020-01-01T00:00:00Z"}, "in the past"),
    ({"items": [{"patient_id": "PAT-1"}], "patient_id": "PAT-1"}, "Unknown field 'patient_id'"),
])
def test_a_bad_bulk_request_is_a_bad_request(env, data, words):
    with pytest.raises(BadRequest) as raised:
        env.bulk(**data)
    assert words in raised.value.message
    assert_nothing_changed(env)


# -- bulk: by a search -----------------------------------------------------------------------------------------


def test_bulk_by_query_searches_studies_with_modalities_in_study_for_modality(env):
    views = env.bulk(query={"Modality": "MR", "PatientID": "PAT-1"})
    # Limit: one more than a bulk grant may hold, so a search naming more is refused, not expanded whole.
    assert env.core.finds == [{"Level": "Study", "Expand": True, "Limit": MAX_BULK + 1,
                               "Query": {"ModalitiesInStudy": "MR", "PatientID": "PAT-1"}}]
    assert [(v["study_uid"], v["orthanc_id"]) for v in views] == [("1.2", env.b.study)]
    assert [(r.study_uid, r.source) for r in env.rows()] == [("1.2", "bulk")]


def test_a_bulk_grant_by_patient_id_does_not_reach_a_patient_whose_id_differs_in_case(env):
    env.core.add_study("pat-1", "3.1")
    env.bulk(query={"PatientID": "PAT-1"})
    assert sorted(r.study_uid for r in env.rows()) == ["1.1", "1.2"]


def test_bulk_by_query_grants_every_matching_study(env):
    env.bulk(query={"Modality": "MR"})
    assert sorted(r.study_uid for r in env.rows()) == ["1.2", "2.1"]


@pytest.mark.parametrize(("query", "error", "words"), [
    ({"Modality": "XA"}, NotFound, "No study matches the query"),
    ({}, BadRequest, "Query must be a non-empty JSON object"),
    ("PatientID=PAT-1", BadRequest, "Query must be a non-empty JSON object"),
    ({"SeriesDescription": "x"}, BadRequest, "Query: Unknown field 'SeriesDescription'"),
    ({"PatientID": ""}, BadRequest, "Query values must be non-empty strings"),
    ({"PatientID": 1}, BadRequest, "Query values must be non-empty strings"),
    ({"StudyDate": "2024-01-01"}, BadRequest, "StudyDate must be a DICOM date or range"),
])
def test_a_bad_bulk_query_writes_nothing(env, query, error, words):
    with pytest.raises(GateError) as raised:
        env.bulk(query=query)
    assert type(raised.value) is error and words in raised.value.message
    assert_nothing_changed(env)


@pytest.mark.parametrize("date", ["20240101", "20240101-20241231", "-20241231", "20240101-"])
def test_bulk_query_takes_dicom_dates_and_ranges(env, date):
    env.core.finds.clear()
    with pytest.raises(NotFound):  # the fake core does not match ranges: it is the request that counts
        env.bulk(query={"StudyDate": date, "PatientID": "NOPE"})
    assert env.core.finds[0]["Query"]["StudyDate"] == date


def test_a_search_the_core_refuses_is_a_bad_request(env):
    env.core.fail.add("/tools/find")
    with pytest.raises(BadRequest, match="Orthanc refused the search"):
        env.bulk(query={"PatientID": "PAT-1"})
    assert_nothing_changed(env)


# -- revoke -------------------------------------------------------------------------------------------------------


def test_revoke_marks_the_grant_audits_and_reaches_the_gate(env, clock):
    grant_id = env.create(patient_id="PAT-1")["id"]
    assert env.access.grants_of("drnkosi")
    clock.advance(60)
    view = env.service.revoke(ACTOR, clock(), grant_id)
    assert (view["revoked_by"], view["revoked_at"]) == ("root1", "2023-11-14T22:14:20Z")
    assert env.invalidated == 2
    record = env.audited[-1]
    assert (record.route_class, record.action, record.patient_id) == ("grant", "grant.revoke", "PAT-1")
    assert not env.access.grants_of("drnkosi")


def test_revoking_twice_is_a_conflict(env):
    grant_id = env.create(patient_id="PAT-1")["id"]
    env.service.revoke(ACTOR, T0, grant_id)
    audited, invalidated = len(env.audited), env.invalidated
    with pytest.raises(Conflict, match=f"Grant {grant_id} was revoked already"):
        env.service.revoke(ACTOR, T0, grant_id)
    assert (len(env.audited), env.invalidated) == (audited, invalidated)


def test_revoking_an_unknown_grant_is_not_found(env):
    with pytest.raises(NotFound, match="No grant 42"):
        env.service.revoke(ACTOR, T0, 42)


# The audit's patient_id column answers "who could see patient X": study grants name their patient.
def test_a_study_grant_is_audited_with_its_patient(env):
    env.create(study_uid="2.1")
    assert (env.audited[0].patient_id, env.audited[0].study_uid) == ("PAT-2", "2.1")


def test_a_study_grant_by_orthanc_id_is_audited_with_its_patient(env):
    env.create(orthanc_id=env.c.study)
    assert (env.audited[0].patient_id, env.audited[0].study_uid) == ("PAT-2", "2.1")


def test_a_bulk_grant_by_query_is_audited_with_the_patients_of_its_studies(env):
    env.bulk(query={"Modality": "MR"})
    [record] = env.audited
    assert (record.patient_id, record.study_uid) == ("PAT-1,PAT-2", "1.2,2.1")


def test_revoking_a_study_grant_is_audited_with_its_patient(env):
    grant_id = env.create(study_uid="2.1")["id"]
    env.service.revoke(ACTOR, T0, grant_id)
    record = env.audited[-1]
    assert (record.action, record.patient_id, record.study_uid) == ("grant.revoke", "PAT-2", "2.1")


def test_a_study_uid_under_two_patients_is_audited_with_both(env):
    env.core.add_study("PAT-3", "2.1")
    env.create(study_uid="2.1")
    assert env.audited[0].patient_id == "PAT-2,PAT-3"


# -- list and check -------------------------------------------------------------------------------------------------


def test_list_filters_and_leaves_revoked_grants_out_unless_asked(env):
    first = env.create(patient_id="PAT-1")["id"]
    env.create(study_uid="2.1", user="drdlamini")
    env.service.revoke(ACTOR, T0, first)
    assert [g["study_uid"] for g in env.service.list({})] == ["2.1"]
    assert [g["id"] for g in env.service.list({"include_revoked": "true", "patient_id": "PAT-1"})] == [first]
    assert env.service.list({"user": "drnkosi"}) == []


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "1001"}, {"offset": "-1"}, {"limit": "x"},
                                   {"doctor": "one"}])
def test_list_refuses_bad_paging(env, query):
    with pytest.raises(BadRequest):
        env.service.list(query)


def test_check_answers_with_the_level_held_and_until_when(env):
    env.create(study_uid="1.1", level="report", expires_at=LATER)
    doctor = Principal("drnkosi", frozenset({"referring_doctor"}), "session")
    answer = env.service.check(doctor, T0, {"study": "1.1", "level": "download"})
    assert answer == {"user": "drnkosi", "study": "1.1", "level": "download", "allowed": True, "held": "report",
                      "until": "2030-01-31T15:00:00Z"}
    assert env.service.check(doctor, T0, {"study": env.a.study, "level": "full"})["allowed"] is False
    assert env.service.check(doctor, T0, {"study": "1.2"})["held"] is None


def test_only_admins_check_another_users_access(env):
    doctor = Principal("drnkosi", frozenset({"referring_doctor"}), "session")
    with pytest.raises(Forbidden):
        env.service.check(doctor, T0, {"user": "drdlamini", "study": "1.1"})
    admin = Principal("root1", frozenset({"admin"}), "session")
    assert env.service.check(admin, T0, {"user": "drdlamini", "study": "1.1"})["allowed"] is False


@pytest.mark.parametrize(("query", "error"), [({"study": "1.1", "level": "boss"}, BadRequest), ({}, BadRequest)])
def test_check_refuses_what_it_cannot_answer(env, query, error):
    with pytest.raises(error):
        env.service.check(Principal("drnkosi", frozenset(), "session"), T0, query)


def test_check_tells_an_admin_a_study_does_not_exist(env):
    with pytest.raises(NotFound):
        env.service.check(Principal("root1", frozenset({"admin"}), "session"), T0, {"study": "9.9"})


def test_check_does_not_tell_a_doctor_whether_a_study_exists(env):
    """A study the doctor holds nothing on and one that does not exist get the same answer."""
    doctor = Principal("drnkosi", frozenset({"referring_doctor"}), "session")
    unknown = env.service.check(doctor, T0, {"study": "9.9", "level": "download"})
    existing = env.service.check(doctor, T0, {"study": "2.1", "level": "download"})
    assert unknown == {"user": "drnkosi", "study": "9.9", "level": "download", "allowed": False, "held": None,
                       "until": None}
    assert {**existing, "study": "9.9"} == unknown
    absent_id = "00000000-00000000-00000000-00000000-00000000"
    assert env.service.check(doctor, T0, {"study": absent_id})["allowed"] is False

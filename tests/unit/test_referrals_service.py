"""ReferralService and ReviewService with a real store and a stand-in for Orthanc's change log and
resources: the cursor, one decision per study, what each outcome writes, failures that must not stop
later arrivals, notifications on stability, and each review decision."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from plugin.config import ReferralSettings
from plugin.errors import BadRequest, Conflict, NotFound, StoreUnavailable
from plugin.services.access import AccessService, ResourceLocator
from plugin.services.core import CoreError, orthanc_id
from plugin.services.referrals import ReferralService
from plugin.services.review import ReviewService
from plugin.services.users import Actor
from plugin.store.models import Doctor, Grant, Referral, ReviewItem
from tests.unit.conftest import T0

PREFIXES = frozenset({"MP"})
REVIEWER = Actor("root1", frozenset({"admin"}), "session", ip="10.0.0.9")


class ArrivalCore:
    """Orthanc as arrival reads it: the change log, studies, their first instance's tags."""

    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []
        self.resources: dict[str, Any] = {}
        self.broken: set[str] = set()  # study ids whose reading raises an unexpected error

    def add_study(self, patient_id: str, study_uid: str, stable: bool = False, **tags: Any) -> str:
        patient, study = orthanc_id(patient_id), orthanc_id(patient_id, study_uid)
        series, instance = f"{study}-s", f"{study}-i"
        simplified = {"PatientID": patient_id, "PatientName": "DOE^JANE", "PatientBirthDate": "19800101",
                      "PatientSex": "F", "StudyInstanceUID": study_uid, "Modality": "CT", **tags}
        record = self.resources.setdefault(f"/patients/{patient}", {
            "MainDicomTags": {k: simplified[k] for k in ("PatientID", "PatientName", "PatientBirthDate",
                                                          "PatientSex")}, "Studies": []})
        record["Studies"].append(study)
        self.resources[f"/studies/{study}"] = {"ID": study, "ParentPatient": patient, "Series": [series],
                                               "IsStable": stable, "MainDicomTags": {"StudyInstanceUID": study_uid},
                                               "PatientMainDicomTags": {**simplified}}
        self.resources[f"/series/{series}"] = {"Instances": [instance]}
        self.resources[f"/instances/{instance}/simplified-tags"] = simplified
        self.change("NewStudy", study)
        return study

    def change(self, kind: str, study: str) -> None:
        self.changes.append({"ChangeType": kind, "ID": study, "Seq": len(self.changes) + 1})

    def get(self, path: str) -> Any:
        if path == "/changes?last":
            return {"Last": len(self.changes)}
        if path.startswith("/changes?since="):
            since = int(path.split("since=")[1].split("&")[0])
            limit = int(path.split("limit=")[1])
            batch = [c for c in self.changes if c["Seq"] > since][:limit]
            return {"Changes": batch, "Done": not [c for c in self.changes if c["Seq"] > since][limit:]}
        if any(study in path for study in self.broken):
            raise KeyError("unexpected")
        if path not in self.resources:
            raise CoreError(404, "Unknown resource")
        return self.resources[path]


class Setup:
    def __init__(self, store, clock, settings: ReferralSettings | None = None) -> None:
        settings = settings or ReferralSettings(default_level="view_only", grant_days=30)
        self.store, self.clock = store, clock
        self.core = ArrivalCore()
        self.access = AccessService(store, ResourceLocator(self.core), clock=clock)
        self.audited: list = []
        self.notified: list[tuple[int, str]] = []
        self.warnings: list[str] = []
        self.service = ReferralService(store, self.core, self.access, self._audit, settings, PREFIXES, clock,
                                       self.warnings.append, notify=self._notify)
        self.review = ReviewService(store, self.service, self.access, self._audit)
        with store.transaction() as db:
            self.zoe = _doctor(db, "MP0000001", "Zoë", "Müller")
            self.pieter = _doctor(db, "MP0000002", "Pieter", "van der Merwe")
            self.susan = _doctor(db, "MP0000003", "Susan", "van der Merwe")
            self.off = _doctor(db, "MP0000004", "Johan", "Botha", disabled=True)
        self.service.start()  # the first start: the cursor is set to the log's end

    def _audit(self, record) -> bool:
        self.audited.append(record)
        return True

    def _notify(self, db, doctor, arrival, now) -> int:
        self.notified.append((doctor.id, arrival.study_uid))
        return 1

    def referral(self, study_uid: str) -> Referral | None:
        with self.store.read() as db:
            return db.execute(select(Referral).where(Referral.study_uid == study_uid)).scalar_one_or_none()

    def grants(self, study_uid: str) -> list[Grant]:
        with self.store.read() as db:
            return list(db.execute(select(Grant).where(Grant.study_uid == study_uid)).scalars())

    def items(self) -> list[ReviewItem]:
        with self.store.read() as db:
            return list(db.execute(select(ReviewItem).order_by(ReviewItem.id)).scalars())


def _doctor(db, number: str, first: str, last: str, disabled: bool = False) -> Doctor:
    doctor = Doctor(hpcsa_number=number, first_name=first, last_name=last, title="Dr", email="", mobile="",
                    practice="", aliases="[]", disabled=disabled, hpcsa_active=True, created_at=T0, updated_at=T0)
    db.add(doctor)
    db.flush()
    return doctor


@pytest.fixture
def setup(store, clock) -> Setup:
    return Setup(store, clock)


def test_studies_stored_before_the_first_start_are_not_linked(store, clock):
    early = ArrivalCore()
    early.add_study("P-0", "9.9", ReferringPhysicianName="MULLER^ZOE")
    service = ReferralService(store, early, AccessService(store, ResourceLocator(early), clock=clock),
                              lambda r: True, ReferralSettings(), PREFIXES, clock, lambda m: None)
    assert service.follow() == 0  # before Orthanc has started: nothing read
    service.start()
    assert service.follow() == 0  # nothing new since
    early.add_study("P-1", "9.8", ReferringPhysicianName="MULLER^ZOE")
    service.start()  # a later start keeps the cursor
    assert service.follow() == 1
    with store.read() as db:
        assert [r.study_uid for r in db.execute(select(Referral)).scalars()] == ["9.8"]


def test_a_clear_referral_is_linked_with_the_configured_grant(setup, clock):
    setup.core.add_study("P-1", "1.1", ReferringPhysicianName="Dr. Müller^Zoë", AccessionNumber="ACC1")
    assert setup.service.follow() == 1
    referral = setup.referral("1.1")
    assert (referral.status, referral.doctor_id, referral.matched_by) == ("linked", setup.zoe.id, "name")
    [grant] = setup.grants("1.1")
    assert (grant.subject_doctor_id, grant.level, grant.source) == (setup.zoe.id, "view_only", "referral")
    assert grant.expires_at == pytest.approx(clock() + 30 * 86400)
    assert referral.grant_id == grant.id and referral.accession_number == "ACC1"
    [event] = setup.audited
    assert (event.action, event.actor, event.patient_id, event.study_uid) == \
        ("referral.link", "gate:referrals", "P-1", "1.1")


def test_each_study_is_decided_once_even_when_the_log_is_read_again(setup, store):
    setup.core.add_study("P-1", "1.1", ReferringPhysicianName="MULLER^ZOE")
    setup.service.follow()
    setup.core.change("NewStudy", orthanc_id("P-1", "1.1"))  # the same study reported again
    setup.service.follow()
    assert setup.service.arrive(orthanc_id("P-1", "1.1")) == ""  # another node decided it first
    assert len(setup.grants("1.1")) == 1


def test_ambiguous_unknown_and_disabled_doctors_go_to_review_without_a_grant(setup):
    for uid, name in (("2.1", "VAN DER MERWE"), ("2.2", "NOBODY^SOMEONE"), ("2.3", "BOTHA^JOHAN")):
        setup.core.add_study(f"P-{uid}", uid, ReferringPhysicianName=name)
    setup.service.follow()
    for uid in ("2.1", "2.2", "2.3"):
        assert setup.referral(uid).status == "review" and setup.grants(uid) == []
    items = setup.items()
    assert [item.kind for item in items] == ["referral"] * 3
    assert sorted(json.loads(items[0].candidates)) == sorted([setup.pieter.id, setup.susan.id])


def test_no_referrer_is_recorded_but_not_queued(setup):
    setup.core.add_study("P-3", "3.1")
    setup.service.follow()
    assert setup.referral("3.1").status == "none" and setup.items() == [] and setup.grants("3.1") == []


def test_another_birth_date_under_the_same_patient_id_is_held(setup):
    setup.core.add_study("P-4", "4.1", ReferringPhysicianName="MULLER^ZOE")
    setup.core.add_study("P-4", "4.2", ReferringPhysicianName="MULLER^ZOE", PatientBirthDate="19810101")
    setup.service.follow()
    assert setup.referral("4.1").status == "linked"
    held = setup.referral("4.2")
    assert (held.status, held.grant_id) == ("held", None) and setup.grants("4.2") == []
    [item] = setup.items()
    assert item.kind == "patient" and "birth date" in item.reason and "DOE" not in item.reason


def test_a_failing_study_is_audited_and_skipped_and_later_ones_still_arrive(setup):
    bad = setup.core.add_study("P-5", "5.1", ReferringPhysicianName="MULLER^ZOE")
    setup.core.broken.add(bad)
    setup.core.add_study("P-6", "6.1", ReferringPhysicianName="MULLER^ZOE")
    assert setup.service.follow() == 2
    assert setup.referral("5.1") is None and setup.referral("6.1").status == "linked"
    assert [e.action for e in setup.audited if e.outcome == "failure"] == ["referral.error"]
    assert setup.service.arrive(bad) == ""
    assert setup.warnings and "P-5" not in setup.warnings[0]


def test_a_deleted_study_is_skipped_quietly(setup):
    setup.core.change("NewStudy", "gone-study")
    assert setup.service.follow() == 1
    assert setup.audited == [] and setup.warnings == []


def test_the_cursor_stays_when_the_store_is_down(setup, monkeypatch):
    setup.core.add_study("P-7", "7.1", ReferringPhysicianName="MULLER^ZOE")

    def down(*args, **kwargs):
        raise StoreUnavailable("store unavailable: disk I/O error")

    monkeypatch.setattr(setup.service, "arrive_all", down)
    with pytest.raises(StoreUnavailable):
        setup.service.follow()
    monkeypatch.undo()
    assert setup.service.follow() == 1  # handled again once the store is back
    assert setup.referral("7.1").status == "linked"


def test_a_stable_linked_study_notifies_its_doctor_once_per_change(setup):
    linked = setup.core.add_study("P-8", "8.1", ReferringPhysicianName="MULLER^ZOE")
    reviewed = setup.core.add_study("P-9", "9.1", ReferringPhysicianName="NOBODY^X")
    setup.core.change("StableStudy", linked)
    setup.core.change("StableStudy", reviewed)
    setup.service.follow()
    assert setup.notified == [(setup.zoe.id, "8.1")]


def test_a_disabled_setting_links_nothing(store, clock):
    setup = Setup(store, clock, ReferralSettings(enabled=False))
    setup.core.add_study("P-1", "1.1", ReferringPhysicianName="MULLER^ZOE")
    assert setup.service.follow() == 1
    assert setup.referral("1.1") is None


# -- the review queue ------------------------------------------------------------------------------

def test_a_reviewer_links_a_candidate_and_the_stable_study_is_notified(setup, clock):
    study = setup.core.add_study("P-10", "10.1", stable=True, ReferringPhysicianName="VAN DER MERWE^^^DR")
    setup.service.follow()
    [item] = setup.review.items({})
    assert {c["id"] for c in item["candidates"]} == {setup.pieter.id, setup.susan.id}
    assert item["actions"] == ["link", "dismiss"]
    view = setup.review.resolve(REVIEWER, clock(), item["id"], {"action": "link", "doctor": setup.pieter.id,
                                                                  "note": "phoned"})
    assert view["status"] == "resolved" and view["resolution"]["note"] == "phoned"
    referral = setup.referral("10.1")
    assert (referral.status, referral.doctor_id, referral.matched_by, referral.resolved_by) == \
        ("linked", setup.pieter.id, "review", "root1")
    assert [g.subject_doctor_id for g in setup.grants("10.1")] == [setup.pieter.id]
    assert setup.notified == [(setup.pieter.id, "10.1")]
    assert setup.audited[-1].action == "review.resolve" and setup.audited[-1].orthanc_id == study
    with pytest.raises(Conflict):
        setup.review.resolve(REVIEWER, clock(), item["id"], {"action": "dismiss"})


def test_a_reviewer_cannot_link_a_disabled_or_unknown_doctor(setup, clock):
    setup.core.add_study("P-11", "11.1", ReferringPhysicianName="NOBODY^X")
    setup.service.follow()
    [item] = setup.review.items({})
    with pytest.raises(Conflict):
        setup.review.resolve(REVIEWER, clock(), item["id"], {"action": "link", "doctor": setup.off.id})
    with pytest.raises(NotFound):
        setup.review.resolve(REVIEWER, clock(), item["id"], {"action": "link", "doctor": 999})
    for body in ({"action": "link", "doctor": True}, {"action": "confirm_patient"}, {"action": "nothing"},
                 {"action": "dismiss", "why": "x"}):
        with pytest.raises(BadRequest):
            setup.review.resolve(REVIEWER, clock(), item["id"], body)
    assert setup.grants("11.1") == [] and setup.review.items({})[0]["status"] == "open"


def test_confirming_a_held_patient_matches_the_referral_as_on_arrival(setup, clock):
    setup.core.add_study("P-12", "12.1", ReferringPhysicianName="MULLER^ZOE")
    setup.core.add_study("P-12", "12.2", ReferringPhysicianName="MULLER^ZOE", PatientSex="M")
    setup.service.follow()
    [item] = setup.review.items({})
    assert item["kind"] == "patient" and item["actions"] == ["confirm_patient", "dismiss"]
    setup.review.resolve(REVIEWER, clock(), item["id"], {"action": "confirm_patient"})
    assert setup.referral("12.2").status == "linked"
    assert [g.subject_doctor_id for g in setup.grants("12.2")] == [setup.zoe.id]


def test_dismissing_links_nothing(setup, clock):
    setup.core.add_study("P-13", "13.1", ReferringPhysicianName="NOBODY^X")
    setup.service.follow()
    [item] = setup.review.items({})
    setup.review.resolve(REVIEWER, clock(), item["id"], {"action": "dismiss"})
    assert setup.referral("13.1").status == "dismissed" and setup.grants("13.1") == []
    assert setup.review.items({}) == [] and len(setup.review.items({"status": "dismissed"})) == 1


def test_list_filters_are_checked(setup):
    for query in ({"status": "x"}, {"kind": "x"}, {"limit": "0"}, {"limit": "x"}, {"offset": "-1"},
                  {"offset": "\u00b2"}, {"limit": "1001"}):
        with pytest.raises(BadRequest):
            setup.review.items(query)
    for doctor in ("abc", "\u00b2"):  # a superscript two is a digit to str.isdigit, not to int()
        with pytest.raises(BadRequest):
            setup.review.referrals({"doctor": doctor})


def test_the_cursor_is_saved_now_and_then_and_a_crash_replays_without_deciding_twice(setup, store, clock):
    setup.core.add_study("P-20", "20.1", ReferringPhysicianName="MULLER^ZOE")
    setup.service.follow()
    setup.core.add_study("P-21", "21.1", ReferringPhysicianName="MULLER^ZOE")
    assert setup.service.follow() == 1  # handled; the cursor saved less than CURSOR_SAVE_SECONDS ago stays
    restarted = ReferralService(store, setup.core, setup.access, lambda r: True, ReferralSettings(), PREFIXES,
                                clock, lambda m: None)
    assert restarted.follow() == 1  # the crash: that change is read again...
    assert len(setup.grants("21.1")) == 1  # ...and decides nothing twice
    clock.advance(6)
    restarted.follow()
    setup.core.add_study("P-22", "22.1", ReferringPhysicianName="MULLER^ZOE")
    restarted.save_cursor()
    again = ReferralService(store, setup.core, setup.access, lambda r: True, ReferralSettings(), PREFIXES,
                            clock, lambda m: None)
    assert again.follow() == 1 and setup.referral("22.1").status == "linked"


def test_a_burst_of_arrivals_is_decided_in_one_transaction_and_a_failing_one_alone_is_skipped(setup, monkeypatch):
    studies = [setup.core.add_study(f"P-3{n}", f"3{n}.1", ReferringPhysicianName="MULLER^ZOE") for n in range(5)]
    original = setup.service.decide

    def fails_for_the_third(db, referral, arrival, now, registered=None):
        if arrival.study_oid == studies[2]:
            raise ValueError("a bug")
        return original(db, referral, arrival, now, registered)

    monkeypatch.setattr(setup.service, "decide", fails_for_the_third)
    statuses = setup.service.arrive_all(studies)
    assert [statuses.get(s) for s in studies] == ["linked", "linked", None, "linked", "linked"]
    assert setup.referral("32.1") is None  # its savepoint was rolled back, nothing half-written
    assert [e.action for e in setup.audited if e.outcome == "failure"] == ["referral.error"]

"""Referrals: a study that arrives is linked to the doctor who referred it, or held for a person.

Arrival is read from Orthanc's own change log (`/changes`), which Orthanc writes in the same
transaction as the instance it stores: the change callback only wakes the follower, and a crash or
a restart loses nothing, since the follower resumes from the cursor kept in the store. The follower
reads the study's first instance, checks its patient against the one seen before under the same
PatientID, matches the referring physician (policies/referrals.py) and writes, in one transaction,
the referral, the grant or the review item. A study that becomes stable and is linked gets its
"study ready" messages queued in the outbox, once per study and doctor.

Two nodes sharing the store may both read a change: the referral is unique per study, so the second
writes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session as DbSession

from plugin.audit.record import AuditRecord, iso_utc
from plugin.config import ReferralSettings
from plugin.errors import StoreUnavailable
from plugin.policies import referrals as rules
from plugin.policies.doctors import decode_aliases
from plugin.services.access import AccessService
from plugin.services.accounts import AuditSink
from plugin.services.core import Core, CoreError
from plugin.store import grants as grant_store
from plugin.store import referrals as referral_store
from plugin.store.db import Store
from plugin.store.models import Doctor, Grant, Referral, ReviewItem

SYSTEM_ACTOR = "gate:referrals"
CHANGE_BATCH = 100
CURSOR_SAVE_SECONDS = 5.0
ROUTE_CLASS = "referral"
DAY = 86400.0


@dataclass(frozen=True)
class Arrival:
    """What the study's first instance says, as arrival needs it."""

    study_oid: str
    study_uid: str
    patient_oid: str
    patient: rules.PatientTags
    referral: rules.ReferralTags
    modality: str
    study_date: str
    description: str


# Queues a linked study's "study ready" messages to its doctor inside the caller's transaction;
# answers how many were new (services/notifications.py).
StudyReadyNotifier = Callable[[DbSession, Doctor, Arrival, float], int]


def candidate(doctor: Doctor) -> rules.DoctorCandidate:
    return rules.DoctorCandidate(doctor_id=doctor.id, hpcsa_number=doctor.hpcsa_number,
                                 first_name=doctor.first_name, last_name=doctor.last_name,
                                 aliases=tuple(decode_aliases(doctor.aliases)),
                                 linkable=not doctor.disabled and doctor.hpcsa_active)


class ReferralService:
    def __init__(self, store: Store, core: Core, access: AccessService, audit: AuditSink,
                 settings: ReferralSettings, hpcsa_prefixes: frozenset[str], clock: Callable[[], float],
                 warn: Callable[[str], None], notify: StudyReadyNotifier | None = None,
                 queued: Callable[[], None] = lambda: None, settle_seconds: float = 0.0) -> None:
        self._store = store
        self._core = core
        self._access = access
        self._audit = audit
        self._settings = settings
        self._prefixes = hpcsa_prefixes
        self._clock = clock
        self._warn = warn
        self._notify = notify
        self._queued = queued
        self._settle = settle_seconds
        self._started = False  # Orthanc's index is open (ORTHANC_STARTED): the change log can be read
        self._cursor: int | None = None  # the last change handled; the store has `_saved_cursor`
        self._saved_cursor: int | None = None
        self._saved_at = 0.0

    # -- following Orthanc's change log ------------------------------------------------------

    def start(self) -> None:
        """At Orthanc's start (ORTHANC_STARTED, when its index is open): on the very first start, set
        the cursor to Orthanc's newest change, so studies stored before the Gate are not linked.
        If the store is down then, `follow` tries again."""
        self._started = True
        with self._store.transaction() as db:
            if referral_store.change_cursor(db) is None:
                referral_store.set_change_cursor(db, int(self._core.get("/changes?last").get("Last", 0)))

    def follow(self) -> int:
        """Handle the changes since the cursor; the number of changes read (none before `start`).

        Waits `settle_seconds` first: a modality sending many small studies wakes this at each one,
        and a short wait lets a burst be decided in one transaction (ingest_vs_plain in bench/).
        """
        if self._settle:
            time.sleep(self._settle)
        if self._cursor is None:
            with self._store.read() as db:
                self._cursor = self._saved_cursor = referral_store.change_cursor(db)
            if self._cursor is None:
                if self._started:
                    self.start()
                return 0
        read = 0
        while True:
            answer = self._core.get(f"/changes?since={self._cursor}&limit={CHANGE_BATCH}")
            changes = answer.get("Changes") or []
            if self._settings.enabled:
                # New studies first, all in one transaction; a study's StableStudy comes after its
                # NewStudy in the log, so it finds the referral decided.
                self.arrive_all([str(c.get("ID", "")) for c in changes if c.get("ChangeType") == "NewStudy"])
                for change in changes:
                    if change.get("ChangeType") == "StableStudy":
                        self._guarded(str(change.get("ID", "")), self.stable)
            for change in changes:
                self._cursor = max(self._cursor, int(change.get("Seq", self._cursor)))
            read += len(changes)
            if answer.get("Done", True) or not changes:
                self.save_cursor(force=False)
                return read

    def save_cursor(self, force: bool = True) -> None:
        """Write the cursor to the store, at most every CURSOR_SAVE_SECONDS (and when the Gate stops):
        not per change, since a C-STORE makes several changes per instance. After a crash the few
        changes since are read again and decide nothing twice (one referral per study, one message
        per idempotency key)."""
        if self._cursor is None or self._cursor == self._saved_cursor:
            return
        now = self._clock()
        if not force and now - self._saved_at < CURSOR_SAVE_SECONDS:
            return
        with self._store.transaction() as db:
            referral_store.set_change_cursor(db, self._cursor)
        self._saved_cursor, self._saved_at = self._cursor, now

    def _guarded(self, study_oid: str, step: Callable[[str], Any]) -> Any:
        """Run one study's step; its failure is audited and skipped, except the store's (raised: the
        cursor stays, and the change is handled again when the store is back)."""
        try:
            return step(study_oid)
        except (StoreUnavailable, SQLAlchemyError):
            raise
        except CoreError as exc:
            if exc.status != 404:  # a study deleted since it arrived has nothing left to link
                self._failed(study_oid, f"Orthanc answered {exc.status}")
        except Exception as exc:  # noqa: BLE001 - one bad study must not stop every later arrival
            self._failed(study_oid, type(exc).__name__)
        return None

    def _failed(self, study_oid: str, why: str) -> None:
        self._warn(f"Gate: could not handle the arrival of study {study_oid} ({why}); it is not linked")
        self._audit(self.event("referral.error", "failure", f"arrival of study {study_oid} not handled: {why}",
                                orthanc_id=study_oid))

    # -- a new study ---------------------------------------------------------------------------

    def arrive(self, study_oid: str) -> str:
        """Decide a new study's referral; answers its status (linked, review, held, none), or "" when
        it had one already (or could not be read)."""
        return self.arrive_all([study_oid]).get(study_oid, "")

    def arrive_all(self, study_oids: list[str]) -> dict[str, str]:
        """Decide the referrals of new studies, read from Orthanc first, then written in one
        transaction (one commit for a burst of arrivals); each study's status by Orthanc id."""
        read = [found for found in (self._guarded(oid, self._examine) for oid in study_oids) if found]
        if not read:
            return {}
        now = self._clock()
        statuses, events = {}, []
        with self._store.transaction() as db:
            doctors = referral_store.all_doctors(db)
            for arrival, problems in read:
                decided = self._guarded(arrival.study_oid, lambda _oid, a=arrival, p=problems: self._record(
                    db, a, p, doctors, now))
                if decided:
                    statuses[arrival.study_oid], outcome = decided
                    events.append(self.event(outcome[0], "success", outcome[1], arrival=arrival))
        if "linked" in statuses.values():
            self._access.invalidate()
        for event in events:
            self._audit(event)
        return statuses

    def _examine(self, study_oid: str) -> tuple[Arrival, tuple[str, ...]]:
        """The study as its first instance gives it, and why its patient may not be the one seen before."""
        arrival = self.read(study_oid)
        seen = self._patient_seen_before(arrival)
        problems = rules.sa_id_contradictions(arrival.patient) + \
            (rules.patient_mismatches(seen, arrival.patient) if seen is not None else ())
        return arrival, problems

    def _record(self, db: DbSession, arrival: Arrival, problems: tuple[str, ...], doctors: list[Doctor],
                now: float) -> tuple[str, tuple[str, str]] | None:
        """One study's referral, in its own savepoint of the shared transaction; None when it had one."""
        try:
            with db.begin_nested():
                referral = Referral(study_uid=arrival.study_uid, orthanc_study_id=arrival.study_oid,
                                    patient_id=arrival.patient.patient_id[:128],
                                    accession_number=arrival.referral.accession_number[:64],
                                    written_name=_written_name(arrival.referral), status="held", matched_by="",
                                    reason="", created_at=now)
                referral_store.add_referral(db, referral)
                if problems:
                    reason = "possible patient mismatch: " + "; ".join(problems)
                    referral.reason = reason[:512]
                    item = self.review(db, "patient", arrival, reason, (), now)
                    return referral.status, ("referral.held", f"study held for review item {item.id}: {reason}")
                outcome = self.decide(db, referral, arrival, now, doctors)
                return referral.status, outcome
        except IntegrityError:
            return None  # decided already: one referral per study

    def decide(self, db: DbSession, referral: Referral, arrival: Arrival, now: float,
               registered: list[Doctor] | None = None) -> tuple[str, str]:
        """Match the referring physician: link, or a review item, or nothing to link."""
        doctors = {doctor.id: doctor for doctor in (registered if registered is not None
                                                    else referral_store.all_doctors(db))}
        match = rules.match_referral(arrival.referral, [candidate(d) for d in doctors.values()], self._prefixes)
        referral.reason = match.reason[:512]
        referral.matched_by = match.matched_by
        if match.outcome == "link" and match.doctor_id in doctors:
            self.link(db, referral, doctors[match.doctor_id], now, SYSTEM_ACTOR)
            return "referral.link", f"linked to doctor {match.doctor_id} by {match.matched_by}: {match.reason}"
        if match.outcome == "none":
            referral.status = "none"
            return "referral.none", match.reason or "no referring physician in the study"
        referral.status = "review"
        item = self.review(db, "referral", arrival, match.reason, match.candidates, now)
        return "referral.review", f"review item {item.id}: {match.reason}"

    def link(self, db: DbSession, referral: Referral, doctor: Doctor, now: float, by: str) -> None:
        """Grant the doctor the study (Gate.Referrals: level, days) and record the referral as linked."""
        days = self._settings.grant_days
        grant = Grant(subject_user=None, subject_doctor_id=doctor.id, patient_id=None, study_uid=referral.study_uid,
                      orthanc_id=referral.orthanc_study_id, level=self._settings.default_level,
                      expires_at=now + days * DAY if days else None, source="referral", created_at=now,
                      created_by=by)
        grant_store.add_grants(db, [grant])
        referral.status, referral.doctor_id, referral.grant_id = "linked", doctor.id, grant.id

    def review(self, db: DbSession, kind: str, arrival: Arrival, reason: str, candidates: tuple[int, ...],
                now: float) -> ReviewItem:
        return referral_store.add_review_item(db, ReviewItem(
            kind=kind, study_uid=arrival.study_uid, orthanc_study_id=arrival.study_oid,
            patient_id=arrival.patient.patient_id[:128], reason=reason[:512], candidates=json.dumps(list(candidates)),
            status="open", created_at=now, resolution="{}"))

    def read(self, study_oid: str) -> Arrival:
        """The study's first instance, through Orthanc (in-process, past the gate)."""
        study = self._core.get(f"/studies/{study_oid}")
        series = study.get("Series") or []
        if not series:
            raise CoreError(404, "the study has no series")
        instances = self._core.get(f"/series/{series[0]}").get("Instances") or []
        if not instances:
            raise CoreError(404, "the series has no instances")
        tags = self._core.get(f"/instances/{instances[0]}/simplified-tags")
        study_uid = str((study.get("MainDicomTags") or {}).get("StudyInstanceUID", ""))
        return Arrival(study_oid=study_oid, study_uid=study_uid, patient_oid=str(study.get("ParentPatient", "")),
                       patient=rules.patient_tags(tags), referral=rules.referral_tags(tags),
                       modality=_text(tags.get("Modality")), study_date=_text(tags.get("StudyDate")),
                       description=_text(tags.get("StudyDescription")))

    def _patient_seen_before(self, arrival: Arrival) -> rules.PatientTags | None:
        """The patient as Orthanc first recorded them under this PatientID (a patient's main tags are
        those of the first study stored; a study's own copy is its own), when the patient has other
        studies; else None."""
        patient = self._core.get(f"/patients/{arrival.patient_oid}")
        if not [study for study in patient.get("Studies") or [] if study != arrival.study_oid]:
            return None
        return rules.patient_tags(patient.get("MainDicomTags") or {})

    # -- a stable study ----------------------------------------------------------------------

    def stable(self, study_oid: str) -> int:
        """Queue "study ready" messages for the study's linked doctor; the number queued."""
        if self._notify is None or not self._settings.notify_doctors:
            return 0
        with self._store.read() as db:
            if not any(r.status == "linked" for r in referral_store.referrals_of_orthanc_study(db, study_oid)):
                return 0
        arrival = self.read(study_oid)  # not while holding the store's write lock
        now = self._clock()
        with self._store.transaction() as db:
            linked = [r for r in referral_store.referrals_of_orthanc_study(db, study_oid) if r.status == "linked"]
            queued = sum(self._queue_ready(db, referral, arrival, now) for referral in linked)
        if queued:
            self._queued()
        return queued

    def _queue_ready(self, db: DbSession, referral: Referral, arrival: Arrival, now: float) -> int:
        doctor = db.get(Doctor, referral.doctor_id) if referral.doctor_id is not None else None
        if doctor is None or doctor.disabled or self._notify is None:
            return 0
        return self._notify(db, doctor, arrival, now)

    def notify_if_stable(self, study_oid: str) -> int:
        """After a review links a study: queue its messages now if it became stable already (its
        StableStudy change was read while it was not linked)."""
        try:
            is_stable = bool(self._core.get(f"/studies/{study_oid}").get("IsStable"))
        except CoreError:
            return 0
        return self.stable(study_oid) if is_stable else 0

    # -- the audit ----------------------------------------------------------------------------

    def event(self, action: str, outcome: str, reason: str, arrival: Arrival | None = None,
               orthanc_id: str = "") -> AuditRecord:
        return AuditRecord(ts=iso_utc(self._clock()), actor=SYSTEM_ACTOR, action=action, outcome=outcome,
                           reason=reason[:512], route_class=ROUTE_CLASS,
                           orthanc_id=arrival.study_oid if arrival else orthanc_id,
                           patient_id=arrival.patient.patient_id[:128] if arrival else "",
                           study_uid=arrival.study_uid[:128] if arrival else "")


def _written_name(tags: rules.ReferralTags) -> str:
    names = tags.referring_names or tags.requesting_names or tags.physicians_of_record
    return (names[0] if names else "")[:256]


def _text(value: Any) -> str:
    return value[:256] if isinstance(value, str) else ""

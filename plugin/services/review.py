"""The review queue and the referrals list: what arrival left to a person, and how a person decides.

A referral item is resolved by picking the doctor (the grant is made then) or dismissed; a patient
item ("possible mismatch") by confirming the patient (the study's referral is then matched as on
arrival) or dismissed. Every decision is audited with who made it; nothing is linked without one.
"""

from __future__ import annotations

import json
from typing import Any

from plugin.audit.record import AuditRecord, iso_utc
from plugin.errors import BadRequest, Conflict, NotFound
from plugin.policies import doctors as paging
from plugin.services.access import AccessService
from plugin.services.accounts import AuditSink
from plugin.services.core import CoreError
from plugin.services.referrals import ROUTE_CLASS, ReferralService
from plugin.services.users import Actor
from plugin.store import referrals as referral_store
from plugin.store.db import Store
from plugin.store.models import Doctor, Referral, ReviewItem

REVIEW_STATUSES = ("open", "resolved", "dismissed", "all")
REFERRAL_STATUSES = ("linked", "review", "held", "none", "dismissed")
REVIEW_KINDS = ("referral", "patient")
ACTIONS = {"referral": ("link", "dismiss"), "patient": ("confirm_patient", "dismiss")}
RESOLVE_FIELDS = frozenset({"action", "doctor", "note"})
MAX_NOTE = 500


def referral_view(referral: Referral) -> dict[str, Any]:
    return {"id": referral.id, "study_uid": referral.study_uid, "orthanc_id": referral.orthanc_study_id,
            "patient_id": referral.patient_id, "accession_number": referral.accession_number,
            "written_name": referral.written_name, "status": referral.status, "doctor": referral.doctor_id,
            "grant": referral.grant_id, "matched_by": referral.matched_by, "reason": referral.reason,
            "created_at": iso_utc(referral.created_at),
            "resolved_at": iso_utc(referral.resolved_at) if referral.resolved_at else None,
            "resolved_by": referral.resolved_by}


def review_view(item: ReviewItem, doctors: dict[int, Doctor]) -> dict[str, Any]:
    candidates = [{"id": doctor_id, "name": _doctor_name(doctors.get(doctor_id)),
                   "hpcsa_number": doctors[doctor_id].hpcsa_number if doctor_id in doctors else None}
                  for doctor_id in json.loads(item.candidates or "[]")]
    return {"id": item.id, "kind": item.kind, "study_uid": item.study_uid, "orthanc_id": item.orthanc_study_id,
            "patient_id": item.patient_id, "reason": item.reason, "candidates": candidates,
            "actions": list(ACTIONS.get(item.kind, ())), "status": item.status,
            "created_at": iso_utc(item.created_at),
            "resolved_at": iso_utc(item.resolved_at) if item.resolved_at else None,
            "resolved_by": item.resolved_by, "resolution": json.loads(item.resolution or "{}")}


class ReviewService:
    def __init__(self, store: Store, referrals: ReferralService, access: AccessService, audit: AuditSink) -> None:
        self._store = store
        self._referrals = referrals
        self._access = access
        self._audit = audit

    def referrals(self, query: dict[str, str]) -> list[dict[str, Any]]:
        status = _choice(query, "status", REFERRAL_STATUSES, None)
        offset, limit = _page(query)
        doctor = _number(query.get("doctor"), "doctor")
        with self._store.read() as db:
            found = referral_store.list_referrals(db, status=status, doctor_id=doctor,
                                                  study_uid=query.get("study_uid") or None, offset=offset,
                                                  limit=limit)
            return [referral_view(referral) for referral in found]

    def items(self, query: dict[str, str]) -> list[dict[str, Any]]:
        status = _choice(query, "status", REVIEW_STATUSES, "open")
        kind = _choice(query, "kind", REVIEW_KINDS, None)
        offset, limit = _page(query)
        with self._store.read() as db:
            found = referral_store.list_review_items(db, status=None if status == "all" else status, kind=kind,
                                                     offset=offset, limit=limit)
            doctors = {doctor.id: doctor for doctor in referral_store.all_doctors(db)} if found else {}
            return [review_view(item, doctors) for item in found]

    def resolve(self, actor: Actor, now: float, item_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """Apply a reviewer's decision: {"action": "link", "doctor": id} | {"action": "confirm_patient"} |
        {"action": "dismiss"}, each with an optional "note"."""
        unknown = sorted(set(data) - RESOLVE_FIELDS)
        if unknown:
            raise BadRequest(f"Unknown field {unknown[0]!r}; fields are action, doctor, note")
        action, note = data.get("action"), data.get("note", "")
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise BadRequest(f'"note" must be a string of at most {MAX_NOTE} characters')
        arrival = None
        with self._store.read() as db:
            item = _open_item(db, item_id, action)
            if action == "confirm_patient":
                # Read before the write transaction: Orthanc is not called while the store is locked.
                arrival = self._arrival(item.orthanc_study_id)
        with self._store.transaction() as db:
            item = _open_item(db, item_id, action)
            referral = referral_store.referral_of_study(db, item.study_uid)
            outcome = self._apply(db, actor, now, item, referral, action, data, arrival)
            item.status = "dismissed" if action == "dismiss" else "resolved"
            item.resolved_at, item.resolved_by = now, actor.username
            item.resolution = json.dumps({"action": action, "doctor": data.get("doctor"), "note": note,
                                          "outcome": outcome})
            if referral is not None and action != "confirm_patient":
                referral.resolved_at, referral.resolved_by = now, actor.username
            view = review_view(item, {d.id: d for d in referral_store.all_doctors(db)})
            linked = referral is not None and referral.status == "linked"
        if linked:
            self._access.invalidate()
            self._referrals.notify_if_stable(view["orthanc_id"])
        self._audit(_decision(actor, now, view, outcome))
        return view

    def _apply(self, db: Any, actor: Actor, now: float, item: ReviewItem, referral: Referral | None, action: str,
               data: dict[str, Any], arrival: Any) -> str:
        if referral is None:
            raise Conflict(f"Review item {item.id}'s study has no referral record")
        if action == "dismiss":
            referral.status = "dismissed"
            return "dismissed: nothing linked"
        if action == "confirm_patient":
            referral.status = "review"
            _, outcome = self._referrals.decide(db, referral, arrival, now)
            return f"patient confirmed; {outcome}"
        doctor_id = data.get("doctor")
        if not isinstance(doctor_id, int) or isinstance(doctor_id, bool):
            raise BadRequest('"doctor" must be the id of the doctor who referred the study')
        doctor = db.get(Doctor, doctor_id)
        if doctor is None:
            raise NotFound(f"No doctor {doctor_id}")
        if doctor.disabled or not doctor.hpcsa_active:
            raise Conflict(f"Doctor {doctor_id} is disabled or their HPCSA registration is inactive: not linked")
        self._referrals.link(db, referral, doctor, now, actor.username)
        referral.matched_by = "review"
        return f"linked to doctor {doctor_id}, grant {referral.grant_id}"

    def _arrival(self, study_oid: str) -> Any:
        try:
            return self._referrals.read(study_oid)
        except CoreError as exc:
            raise Conflict("The study is no longer in Orthanc; dismiss the item instead") from exc


def _open_item(db: Any, item_id: int, action: Any) -> ReviewItem:
    item = referral_store.review_item(db, item_id)
    if item is None:
        raise NotFound(f"No review item {item_id}")
    allowed = ACTIONS.get(item.kind, ())
    if action not in allowed:
        raise BadRequest(f'"action" must be one of {", ".join(allowed)} for a {item.kind} item')
    if item.status != "open":
        raise Conflict(f"Review item {item_id} was {item.status} already")
    return item


def _decision(actor: Actor, now: float, view: dict[str, Any], outcome: str) -> AuditRecord:
    return AuditRecord(ts=iso_utc(now), actor=actor.username, action="review.resolve", outcome="success",
                       reason=f"review item {view['id']} ({view['kind']}): {outcome}"[:512], source_ip=actor.ip,
                       roles=",".join(sorted(actor.roles)), route_class=ROUTE_CLASS,
                       orthanc_id=view["orthanc_id"], patient_id=view["patient_id"], study_uid=view["study_uid"],
                       detail=json.dumps({"item": view["id"], "resolution": view["resolution"]}))


def _doctor_name(doctor: Doctor | None) -> str | None:
    if doctor is None:
        return None
    return " ".join(part for part in (doctor.title, doctor.first_name, doctor.last_name) if part)


def _choice(query: dict[str, str], name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    value = query.get(name) or default
    if value is not None and value not in allowed:
        raise BadRequest(f'"{name}" must be one of {", ".join(allowed)}')
    return value


def _number(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    if not paging.PAGE_NUMBER.fullmatch(value):
        raise BadRequest(f'"{name}" must be a whole number')
    return int(value)


def _page(query: dict[str, str]) -> tuple[int, int]:
    """(offset, limit), by the rule every list of ours pages by (policies/doctors.page)."""
    try:
        return paging.page(query.get("offset"), query.get("limit"))
    except paging.Invalid as exc:
        raise BadRequest(str(exc)) from exc

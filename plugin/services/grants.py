"""Grants: who may do what with which patient or study. Create (one, or in bulk by a list or a
search), list, revoke, check. Every change is audited and reaches the gate at once.

A grant names its subject (a user by username, or a doctor by id: the user tied to the doctor),
its object (a patient by DICOM PatientID, which covers their future studies too, or a study by
StudyInstanceUID or Orthanc id, stored by UID), a level and an optional expiry. Everything a
request names is checked before anything is written, and a bulk grant is written in one
transaction: nothing half-written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from plugin.audit.record import AuditRecord
from plugin.errors import BadRequest, Conflict, Forbidden, NotFound
from plugin.policies.grants import NEVER
from plugin.policies.levels import LEVEL_NAMES, parse_level
from plugin.policies.types import Principal
from plugin.services.access import AccessService
from plugin.services.accounts import AuditSink, account_event
from plugin.services.core import Core, CoreError, orthanc_id
from plugin.services.expiry import expiry
from plugin.services.users import Actor
from plugin.store import accounts
from plugin.store import grants as grant_store
from plugin.store.db import Store
from plugin.store.models import Doctor, Grant

GRANT_FIELDS = frozenset({"user", "doctor", "patient_id", "study_uid", "orthanc_id", "level", "expires_at"})
BULK_FIELDS = frozenset({"user", "doctor", "level", "expires_at", "items", "query"})
# What a bulk grant's query may search by (resolved through Orthanc's /tools/find, study level).
BULK_QUERY_KEYS = frozenset({"PatientID", "PatientName", "StudyDate", "Modality", "ModalitiesInStudy",
                             "AccessionNumber", "ReferringPhysicianName", "StudyDescription"})
MAX_BULK = 10000
# DICOM matching characters: a PatientID holding one would match other patients in searches.
UNSAFE_ID = re.compile(r"[*?\\\x00-\x1f]")
DICOM_DATE_RANGE = re.compile(r"(\d{8})?(-(\d{8})?)?")


@dataclass(frozen=True)
class Subject:
    user: str | None = None
    doctor_id: int | None = None

    @property
    def label(self) -> str:
        return f"user {self.user}" if self.user else f"doctor {self.doctor_id}"


@dataclass(frozen=True)
class GrantObject:
    patient_id: str | None = None
    study_uid: str | None = None
    orthanc_id: str | None = None
    patient_of_study: str = ""  # for the audit: the PatientID a study grant reaches


def grant_view(grant: Grant) -> dict[str, Any]:
    return {"id": grant.id, "user": grant.subject_user, "doctor": grant.subject_doctor_id,
            "patient_id": grant.patient_id, "study_uid": grant.study_uid, "orthanc_id": grant.orthanc_id,
            "level": grant.level, "expires_at": _iso(grant.expires_at), "source": grant.source,
            "created_at": _iso(grant.created_at), "created_by": grant.created_by,
            "revoked_at": _iso(grant.revoked_at), "revoked_by": grant.revoked_by}


class GrantService:
    def __init__(self, store: Store, access: AccessService, core: Core, audit: AuditSink) -> None:
        self._store = store
        self._access = access
        self._core = core
        self._audit = audit

    def create(self, actor: Actor, now: float, data: dict[str, Any]) -> dict[str, Any]:
        _known(data, GRANT_FIELDS)
        level, expires_at = _level(data), expiry(data, now)
        target = self._object(data)
        return self._write(actor, now, data, level, expires_at, [target], "manual")[0]

    def bulk(self, actor: Actor, now: float, data: dict[str, Any]) -> list[dict[str, Any]]:
        """By a list (`items`: objects like a single grant's) or by a search (`query`)."""
        _known(data, BULK_FIELDS)
        level, expires_at = _level(data), expiry(data, now)
        if ("items" in data) == ("query" in data):
            raise BadRequest('Give either "items" (a list of patient_id/study_uid/orthanc_id objects) or "query"')
        if "items" in data:
            items = data["items"]
            if not isinstance(items, list) or not items or len(items) > MAX_BULK:
                raise BadRequest(f'"items" must be a list of 1 to {MAX_BULK} objects')
            targets = []
            for number, item in enumerate(items, 1):
                if not isinstance(item, dict):
                    raise BadRequest(f"Item {number} must be a JSON object")
                _known(item, frozenset({"patient_id", "study_uid", "orthanc_id"}), f"Item {number}: ")
                try:
                    targets.append(self._object(item))
                except (BadRequest, NotFound) as exc:
                    raise type(exc)(f"Item {number}: {exc.message}") from None
        else:
            targets = self._search(data["query"])
        return self._write(actor, now, data, level, expires_at, targets, "bulk")

    def revoke(self, actor: Actor, now: float, grant_id: int) -> dict[str, Any]:
        with self._store.transaction() as db:
            grant = grant_store.grant_by_id(db, grant_id)
            if grant is None:
                raise NotFound(f"No grant {grant_id}")
            if grant.revoked_at is not None:
                raise Conflict(f"Grant {grant_id} was revoked already")
            grant_store.revoke_grants(db, [grant], now, actor.username)
            view = grant_view(grant)
        self._access.invalidate()
        patients = [loc.patient_id for loc in self._access.locator.by_uid("study", view["study_uid"])] \
            if view["study_uid"] else []
        self._audit(_event(actor, now, "grant.revoke", f"revoked grant {grant_id}", [view], patients))
        return view

    def list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        try:
            offset, limit = int(query.get("offset", "0")), int(query.get("limit", "100"))
            doctor = int(query["doctor"]) if query.get("doctor") else None
        except ValueError:
            raise BadRequest("Offset, limit and doctor must be whole numbers") from None
        if offset < 0 or not 1 <= limit <= 1000:
            raise BadRequest("Offset must be 0 or more and limit 1 to 1000")
        with self._store.read() as db:
            found = grant_store.list_grants(
                db, user=query.get("user") or None, doctor_id=doctor, patient_id=query.get("patient_id") or None,
                study_uid=query.get("study_uid") or None,
                include_revoked=query.get("include_revoked", "").lower() in ("1", "true", "yes"),
                offset=offset, limit=limit)
            return [grant_view(g) for g in found]

    def check(self, actor: Principal, now: float, query: dict[str, str]) -> dict[str, Any]:
        """May `user` act at `level` on `study` (a StudyInstanceUID or an Orthanc study id)?"""
        username, study, level_name = query.get("user") or actor.username or "", query.get("study", ""), \
            query.get("level", "view_only")
        if username != actor.username and not actor.is_admin:
            raise Forbidden("Only admins may check another user's access")
        level = parse_level(level_name)
        if level is None:
            raise BadRequest(f"Unknown level {level_name!r}; levels are {', '.join(LEVEL_NAMES)}")
        if not study:
            raise BadRequest("Give study= (a StudyInstanceUID or an Orthanc study id)")
        located = self._access.locator.by_uid("study", study) or tuple(
            loc for loc in (self._access.locator.by_orthanc_id("study", study),) if loc is not None)
        if not located:
            if not actor.is_admin:  # whether a study exists is not the business of those without a grant
                return {"user": username, "study": study, "level": level.label, "allowed": False, "held": None,
                        "until": None}
            raise NotFound(f"No study {study!r} in Orthanc")
        grants = self._access.grants_of(username)
        holds = [grants.on_study(loc.patient_id, loc.study_uid or "", now) for loc in located]
        held = min(holds, key=lambda h: (h.level or 0))
        allowed = held.level is not None and held.level >= level
        return {"user": username, "study": study, "level": level.label, "allowed": allowed,
                "held": held.level.label if held.level else None,
                "until": _iso(held.until) if held.level and held.until != NEVER else None}

    # -- steps ---------------------------------------------------------------------------------

    def _write(self, actor: Actor, now: float, data: dict[str, Any], level: str,
               expires_at: float | None, targets: list[GrantObject], source: str) -> list[dict[str, Any]]:
        with self._store.transaction() as db:
            subject = _subject(db, data)
            grants = grant_store.add_grants(db, [Grant(
                subject_user=subject.user, subject_doctor_id=subject.doctor_id, patient_id=t.patient_id,
                study_uid=t.study_uid, orthanc_id=t.orthanc_id, level=level, expires_at=expires_at, source=source,
                created_at=now, created_by=actor.username) for t in targets])
            views = [grant_view(g) for g in grants]
        self._access.invalidate()
        self._audit(_event(actor, now, f"grant.{'create' if source == 'manual' else 'bulk'}",
                           f"granted {level} to {subject.label} on {len(views)} "
                           f"{'patient or study' if len(views) == 1 else 'patients or studies'}", views,
                           [t.patient_of_study for t in targets]))
        return views

    def _object(self, data: dict[str, Any]) -> GrantObject:
        given = [k for k in ("patient_id", "study_uid", "orthanc_id") if data.get(k) not in (None, "")]
        if len(given) != 1:
            raise BadRequest("Name exactly one of patient_id, study_uid or orthanc_id")
        key, value = given[0], data[given[0]]
        if not isinstance(value, str) or len(value) > 64 or UNSAFE_ID.search(value):
            raise BadRequest(f"{key} must be a DICOM identifier (at most 64 characters, no * ? or \\)")
        locator = self._access.locator
        if key == "patient_id":
            # Orthanc names a patient by a hash of the exact PatientID: no search, no case folding.
            patient_oid = orthanc_id(value)
            if locator.by_orthanc_id("patient", patient_oid) is None:
                raise NotFound(f"No patient with PatientID {value!r} in Orthanc")
            return GrantObject(patient_id=value, orthanc_id=patient_oid)
        if key == "study_uid":
            found = locator.by_uid("study", value)
            if not found:
                raise NotFound(f"No study with StudyInstanceUID {value!r} in Orthanc")
            return GrantObject(study_uid=value, orthanc_id=found[0].study_oid if len(found) == 1 else None,
                               patient_of_study=",".join(sorted({f.patient_id for f in found})))
        study = locator.by_orthanc_id("study", value)
        if study is not None:
            return GrantObject(study_uid=study.study_uid, orthanc_id=value, patient_of_study=study.patient_id)
        patient = locator.by_orthanc_id("patient", value)
        if patient is not None:
            return GrantObject(patient_id=patient.patient_id, orthanc_id=value)
        if locator.by_any_id(value) is not None:
            raise BadRequest("Grants name a patient or a study; this Orthanc id is a series or an instance")
        raise NotFound(f"No patient or study with Orthanc id {value!r}")

    def find_studies(self, query: Any) -> list[dict[str, Any]]:
        """The studies a search names (some of BULK_QUERY_KEYS, values as DICOM matches them), for
        a bulk grant or an admin choosing what to grant; at most MAX_BULK."""
        if not isinstance(query, dict) or not query:
            raise BadRequest(f"Query must be a non-empty JSON object with some of {', '.join(sorted(BULK_QUERY_KEYS))}")
        _known(query, BULK_QUERY_KEYS, "Query: ")
        if not all(isinstance(v, str) and v for v in query.values()):
            raise BadRequest("Query values must be non-empty strings")
        if "StudyDate" in query and not DICOM_DATE_RANGE.fullmatch(query["StudyDate"]):
            raise BadRequest("StudyDate must be a DICOM date or range: YYYYMMDD, YYYYMMDD-YYYYMMDD, "
                             "-YYYYMMDD or YYYYMMDD-", "StudyDate")
        dicom_query = {("ModalitiesInStudy" if k == "Modality" else k): v for k, v in query.items()}
        try:
            studies = self._core.post("/tools/find", json.dumps({"Level": "Study", "Expand": True,
                                                                  "Query": dicom_query, "Limit": MAX_BULK + 1}))
        except CoreError as exc:
            raise BadRequest(f"Orthanc refused the search: {exc.message}") from None
        patient_id = query.get("PatientID", "")
        if patient_id and not any(w in patient_id for w in "*?\\"):
            # Orthanc matches PatientID without regard to case: "ab1" must not reach "AB1".
            studies = [s for s in studies if (s.get("PatientMainDicomTags") or {}).get("PatientID") == patient_id]
        if len(studies) > MAX_BULK:
            raise BadRequest(f"The query matches more than {MAX_BULK} studies; narrow it")
        return [_study_card(study) for study in studies]

    def who_can_see(self, study: str, now: float) -> dict[str, Any]:
        """Everyone a grant lets see a study (a StudyInstanceUID or an Orthanc study id): the live
        grants on the study and on its patient. (Admins see every study; shares are listed apart.)"""
        located = self._access.locator.by_uid("study", study) or tuple(
            loc for loc in (self._access.locator.by_orthanc_id("study", study),) if loc is not None)
        if not located:
            raise NotFound(f"No study {study!r} in Orthanc")
        with self._store.read() as db:
            found: dict[int, Grant] = {}
            for loc in located:
                for grant in grant_store.list_grants(db, study_uid=loc.study_uid, limit=MAX_BULK) + \
                        grant_store.list_grants(db, patient_id=loc.patient_id, limit=MAX_BULK):
                    if grant.expires_at is None or grant.expires_at > now:
                        found[grant.id] = grant
            views = [grant_view(grant) for grant in sorted(found.values(), key=lambda g: g.id)]
        return {"study_uid": located[0].study_uid, "patient_id": located[0].patient_id, "grants": views}

    def _search(self, query: Any) -> list[GrantObject]:
        cards = self.find_studies(query)
        if not cards:
            raise NotFound("No study matches the query")
        return [GrantObject(study_uid=c["study_uid"], orthanc_id=c["orthanc_id"], patient_of_study=c["patient_id"])
                for c in cards]


def _subject(db: Any, data: dict[str, Any]) -> Subject:
    user, doctor = data.get("user"), data.get("doctor")
    if (user is None) == (doctor is None):
        raise BadRequest('Name exactly one subject: "user" (a username) or "doctor" (a doctor id)')
    if user is not None:
        if not isinstance(user, str) or not user:
            raise BadRequest("User must be a username")
        found = accounts.user_by_name(db, user)
        if found is None:
            raise NotFound(f"No user {user!r} (directory users exist after their first sign-in; "
                           "or grant to their doctor record)")
        if found.disabled:
            raise Conflict(f"User {user!r} is disabled")
        return Subject(user=user)
    if not isinstance(doctor, int) or isinstance(doctor, bool):
        raise BadRequest("Doctor must be a doctor id (a number)")
    record = db.get(Doctor, doctor)
    if record is None:
        raise NotFound(f"No doctor {doctor}")
    if record.username:
        tied = accounts.user_by_name(db, record.username)
        if tied is not None and tied.disabled:
            raise Conflict(f"Doctor {doctor}'s user {record.username!r} is disabled")
    return Subject(doctor_id=doctor)


def _level(data: dict[str, Any]) -> str:
    level = parse_level(data.get("level"))  # type: ignore[arg-type]
    if level is None:
        raise BadRequest(f"Level must be one of {', '.join(LEVEL_NAMES)}")
    return level.label


def _known(data: dict[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"{prefix}Unknown field {unknown[0]!r}; fields are {', '.join(sorted(allowed))}")


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _event(actor: Actor, now: float, action: str, reason: str, views: list[dict[str, Any]],
           patients_of_studies: Sequence[str] = ()) -> AuditRecord:
    record = account_event(now, actor.username, action, "success", reason[:512], actor.ip,
                           ",".join(sorted(actor.roles)), json.dumps({"grants": views[:1000]}))
    patients = ",".join(sorted({v["patient_id"] for v in views if v["patient_id"]}
                               | {p for p in patients_of_studies if p}))
    studies = ",".join(sorted({v["study_uid"] for v in views if v["study_uid"]}))
    return AuditRecord(**{**record.__dict__, "route_class": "grant", "patient_id": patients[:128],
                          "study_uid": studies[:128]})


def _study_card(study: dict[str, Any]) -> dict[str, Any]:
    """What a search shows of a study (Orthanc's expanded answer)."""
    tags, patient = study.get("MainDicomTags") or {}, study.get("PatientMainDicomTags") or {}
    return {"study_uid": str(tags.get("StudyInstanceUID", "")), "orthanc_id": study.get("ID"),
            "patient_id": str(patient.get("PatientID", "")), "patient_name": str(patient.get("PatientName", "")),
            "study_date": str(tags.get("StudyDate", "")), "description": str(tags.get("StudyDescription", "")),
            "referring": str(tags.get("ReferringPhysicianName", "")), "accession": str(tags.get("AccessionNumber", "")),
            "modalities": str(tags.get("ModalitiesInStudy", ""))}

"""Searches and lists answered for callers who are not admins, trimmed to what they were granted.

What a caller may see is worked out from their grants and Orthanc ids (`visible`): a granted
patient's studies come from the patient resource (its id is a hash of the PatientID), a granted
study's id is kept with its grant. Then:

- a plain listing of studies or patients (no matching keys of the caller's own, no 1.12
  extras) is answered from those ids directly: paged by Since and Limit, and expanded one
  resource at a time, page only. This is the common case (Orthanc Explorer, viewers' study
  lists) and costs no search in Orthanc's index.
- anything else is turned into one call of Orthanc's /tools/find with one more constraint: the
  StudyInstanceUIDs the caller may see (PatientIDs at patient level: see `_constrain`). Since,
  Limit, Expand and the rest are then applied by Orthanc after that constraint.

Either way a caller asking for 100 gets up to 100 of their own, and a caller with nothing
visible gets an empty answer without asking Orthanc (an empty constraint would match everything).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Any

from plugin.errors import BadRequest, Forbidden
from plugin.policies.types import Principal
from plugin.services.access import LEVEL_OF_TYPE, PLURAL, AccessService
from plugin.services.core import Core, CoreError, orthanc_id

LEVEL_NAMES = {"patient": "Patient", "study": "Study", "series": "Series", "instance": "Instance"}
STUDY_UID_KEYS = frozenset({"studyinstanceuid", "0020000d"})
PATIENT_ID_KEYS = frozenset({"patientid", "00100020"})
WILDCARDS = ("*", "?")
# Keys of a find request that a direct listing honours; any other sends it to Orthanc's /tools/find.
DIRECT_KEYS = frozenset({"Level", "Query", "Expand", "Since", "Limit", "Full", "Short", "CaseSensitive"})


@dataclass(frozen=True)
class Visible:
    """What one caller may see now: granted patients (PatientID -> Orthanc id) and visible studies
    as (StudyInstanceUID, Orthanc id) pairs: study grants, and every study of a granted patient.
    Pairs, because Orthanc can hold one StudyInstanceUID under two patients."""

    patients: dict[str, str]
    studies: frozenset[tuple[str, str]]

    @property
    def patient_ids(self) -> frozenset[str]:
        return frozenset(self.patients)

    @property
    def study_uids(self) -> frozenset[str]:
        return frozenset(uid for uid, _ in self.studies)

    @property
    def study_oids(self) -> frozenset[str]:
        return frozenset(oid for _, oid in self.studies)


class SearchService:
    def __init__(self, core: Core, access: AccessService) -> None:
        self._core = core
        self._access = access

    def visible(self, principal: Principal, now: float) -> Visible:
        grants = self._access.grants_of(principal.username or "")
        locator = self._access.locator
        patients: dict[str, str] = {}
        studies: set[tuple[str, str]] = set()
        for patient_id in sorted(grants.patient_ids(now)):
            patient_oid = orthanc_id(patient_id)
            study_oids = locator.studies_of_patient(patient_oid)
            if study_oids is None:
                continue
            patients[patient_id] = patient_oid
            for study_oid in study_oids:
                located = locator.by_orthanc_id("study", study_oid)
                if located is not None and located.study_uid:
                    studies.add((located.study_uid, study_oid))
        for uid in grants.study_uids(now):
            known = grants.study_ids.get(uid)
            located = locator.by_orthanc_id("study", known) if known else None
            if located is not None and located.study_uid == uid:
                studies.add((uid, known))
                continue
            for found in locator.by_uid("study", uid):  # a grant made before ids were kept
                if found.study_oid:
                    studies.add((uid, found.study_oid))
        return Visible(patients, frozenset(studies))

    def find(self, principal: Principal, request: dict[str, Any], now: float, in_core_order: bool = False) -> list[Any]:
        """/tools/find for a caller who is not an admin: the same answer Orthanc gives, trimmed.
        `in_core_order`: always ask Orthanc, so the answer comes in its order (a plain listing is
        otherwise answered from the visible ids, sorted)."""
        visible = self.visible(principal, now)
        body = self._constrain(request, visible)
        if body is None:
            return []
        level = body["Level"].lower()
        if level in ("study", "patient") and _plain_listing(request, level) and not in_core_order:
            return self._direct(level, body, visible)
        if level == "patient":
            return self._exact_patients(body, visible.patient_ids)
        return self._of_visible_studies(level, body, visible.study_oids)

    def _of_visible_studies(self, level: str, body: dict[str, Any], study_oids: frozenset[str]) -> list[Any]:
        """The constrained find, kept to resources of the visible studies themselves: the
        StudyInstanceUID constraint would also match a study of another patient carrying the same
        UID. (Since and Limit are applied by Orthanc before this: such a twin can shorten a page.)"""
        # Each answer names its resource's "ID": ids-only answers are the ids, expanded ones and
        # 1.12.5's ResponseContent answers carry "ID" always (it is not a ResponseContent value:
        # 1.12.7 refuses it). An item without one is not shown.
        kept = []
        for item in self._core.post("/tools/find", json.dumps(body)):
            oid = item if isinstance(item, str) else item.get("ID") if isinstance(item, dict) else None
            if level == "study":
                visible = oid in study_oids
            else:
                located = self._access.locator.by_orthanc_id(level, oid) if isinstance(oid, str) else None
                visible = located is not None and located.study_oid in study_oids
            if visible:
                kept.append(item)
        return kept

    def _direct(self, level: str, body: dict[str, Any], visible: Visible) -> list[Any]:
        """A plain listing answered from the visible ids (sorted, so pages are stable)."""
        allowed = set(body["Query"]["PatientID" if level == "patient" else "StudyInstanceUID"].split("\\"))
        named = visible.patients.items() if level == "patient" else visible.studies
        ids = sorted(oid for key, oid in named if key in allowed and oid)
        since, limit = _whole(body, "Since"), _whole(body, "Limit")
        page = ids[since:since + limit] if limit else ids[since:]
        if not body.get("Expand"):
            return page
        option = "?full" if body.get("Full") else "?short" if body.get("Short") else ""
        expanded = []
        for oid in page:
            try:
                expanded.append(self._core.get(f"/{PLURAL[level]}/{oid}{option}"))
            except CoreError:
                continue  # deleted meanwhile
        return expanded

    def _exact_patients(self, body: dict[str, Any], allowed: frozenset[str]) -> list[Any]:
        """Orthanc matches PatientID without regard to case, and a granted "ab1" must not bring
        "AB1" along: the answer is asked with the patients' main tags, kept to the exact
        PatientIDs, and cut back to what was asked. (Since and Limit are applied by Orthanc before
        this: an id differing from a granted one by case alone can shorten a page.)"""
        content = body.get("ResponseContent")
        if isinstance(content, list):  # 1.12.5: the answer holds "ID" and what ResponseContent names
            adds_tags = "MainDicomTags" not in content
            asked = {**body, "ResponseContent": [*content, "MainDicomTags"]} if adds_tags else body
            found = self._core.post("/tools/find", json.dumps(asked))
            kept = [item for item in found if _patient_id_of(item) in allowed]
            return [{k: v for k, v in item.items() if k != "MainDicomTags"} for item in kept] if adds_tags else kept
        found = self._core.post("/tools/find", json.dumps({**body, "Expand": True}))
        kept = [item for item in found if _patient_id_of(item) in allowed]
        return kept if body.get("Expand") else [item["ID"] for item in kept]

    def listing(self, principal: Principal, level: str, options: dict[str, Any], since: int | None,
                limit: int | None, now: float) -> list[Any]:
        """GET /patients, /studies, /series, /instances (expand, full, short, requestedTags, since,
        limit), trimmed; `options` are already in /tools/find's words (Expand, Full, ...)."""
        request: dict[str, Any] = {"Level": LEVEL_NAMES[level], "Query": {}, **options}
        if since is not None:
            request["Since"] = since
        if limit is not None:
            request["Limit"] = limit
        return self.find(principal, request, now)

    def lookup(self, principal: Principal, body: bytes, now: float) -> list[Any]:
        """/tools/lookup (a DICOM UID in, the resources that carry it out), kept to those the caller
        holds a grant on."""
        matches = self._core.post("/tools/lookup", body)
        grants = self._access.grants_of(principal.username or "")
        kept = []
        for match in matches if isinstance(matches, list) else ():
            level = LEVEL_OF_TYPE.get(match.get("Type")) if isinstance(match, dict) else None
            located = self._access.locator.by_orthanc_id(level, str(match.get("ID", ""))) if level else None
            if located is None:
                continue
            held = grants.on_patient(located.patient_id, now) if level == "patient" else \
                grants.on_study(located.patient_id, located.study_uid or "", now)
            if held.level is not None:
                kept.append(match)
        return kept

    def patient(self, principal: Principal, patient_oid: str, path: str, now: float) -> dict[str, Any]:
        """GET /patients/{id} (Orthanc Explorer's study page asks for it): whole for a caller granted
        the patient; for one granted some of the patient's studies, with only those in "Studies"
        (the others' existence is not theirs to know); refused otherwise, and for an unknown id."""
        located = self._access.locator.by_orthanc_id("patient", patient_oid)
        if located is None:
            raise Forbidden("No grant for this patient")
        grants = self._access.grants_of(principal.username or "")
        whole = grants.on_patient(located.patient_id, now).level is not None
        visible = self.visible(principal, now).study_oids if not whole else frozenset()
        answer = self._core.get(path)
        studies = answer.get("Studies") if isinstance(answer, dict) else None
        if whole or not isinstance(studies, list):
            if not whole:
                raise Forbidden("No grant for this patient")
            return answer
        kept = [study for study in studies if study in visible]
        if not kept:
            raise Forbidden("No grant for this patient")
        trimmed = {**answer, "Studies": kept}
        # When the patient last changed, and whether it is complete, tell of the other studies too:
        # taken from the studies kept instead.
        held = [self._core.get(f"/studies/{study}") for study in kept]
        if "LastUpdate" in answer:
            trimmed["LastUpdate"] = max(str(study.get("LastUpdate", "")) for study in held)
        if "IsStable" in answer:
            trimmed["IsStable"] = all(bool(study.get("IsStable")) for study in held)
        return trimmed

    def statistics(self, principal: Principal, now: float) -> dict[str, int]:
        """The caller's own counts (no disk sizes: those are the server's)."""
        visible = self.visible(principal, now)
        counts = {"CountPatients": len(visible.patients), "CountStudies": 0, "CountSeries": 0, "CountInstances": 0}
        for study_oid in sorted(visible.study_oids):
            try:
                found = self._core.get(f"/studies/{study_oid}/statistics")
            except CoreError:
                continue  # deleted meanwhile
            counts["CountStudies"] += 1
            counts["CountSeries"] += int(found.get("CountSeries", 0))
            counts["CountInstances"] += int(found.get("CountInstances", 0))
        return counts

    def _constrain(self, request: dict[str, Any], visible: Visible) -> dict[str, Any] | None:
        """The caller's find request with the visibility constraint added; None if nothing can match.

        Patient level: PatientID among the granted patients (a study grant does not open the
        patient's other studies, and the patient resource lists them). Other levels:
        StudyInstanceUID among the visible studies. A caller's own constraint on the same tag,
        however spelt, is intersected with ours rather than left to override it.
        """
        if not isinstance(request, dict):
            raise BadRequest("The body of /tools/find must be a JSON object")
        level = str(request.get("Level", "")).lower()
        if level not in LEVEL_NAMES:
            raise BadRequest('Level must be one of "Patient", "Study", "Series", "Instance"')
        query = request.get("Query", {})
        if not isinstance(query, dict) or not all(isinstance(v, str) for v in query.values()):
            raise BadRequest("Query must be a JSON object of strings")
        own_keys, allowed = (PATIENT_ID_KEYS, visible.patient_ids) if level == "patient" else \
            (STUDY_UID_KEYS, visible.study_uids)
        kept: dict[str, str] = {}
        for key, value in query.items():
            if _tag_key(key) in own_keys:
                allowed = _matching(value, allowed)
            else:
                kept[key] = value
        if not allowed:
            return None
        kept["PatientID" if level == "patient" else "StudyInstanceUID"] = _uid_list(allowed)
        return {**request, "Query": kept}


def _plain_listing(request: dict[str, Any], level: str) -> bool:
    """No matching key of the caller's own (beyond the one the gate constrains at this level) and no
    1.12 extras."""
    own = PATIENT_ID_KEYS if level == "patient" else STUDY_UID_KEYS
    return set(request) <= DIRECT_KEYS and all(_tag_key(k) in own for k in request.get("Query") or {})


def _whole(body: dict[str, Any], key: str) -> int:
    value = body.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"{key} must be a whole number, 0 or more")
    return value


def _patient_id_of(item: Any) -> str | None:
    """PatientID of an expanded patient."""
    return patient_id_in(item.get("MainDicomTags", {}) if isinstance(item, dict) else {})


def patient_id_in(tags: Any) -> str | None:
    """The PatientID among an answer's tags, in Orthanc's plain, `full` or `short` tag formats."""
    value = tags.get("PatientID", tags.get("0010,0020")) if isinstance(tags, dict) else None
    if isinstance(value, dict):
        value = value.get("Value")
    return value if isinstance(value, str) else None


def _tag_key(key: str) -> str:
    return key.strip().lower().replace(",", "").replace("(", "").replace(")", "")


def _matching(pattern: str, values: frozenset[str]) -> frozenset[str]:
    """The values a DICOM matching key selects: a list (`\\`), each item exact or with * and ?."""
    if not pattern:
        return values  # universal matching
    found = set()
    for item in pattern.split("\\"):
        if any(w in item for w in WILDCARDS):
            found.update(v for v in values if fnmatch.fnmatchcase(v, item.replace("[", "[[]")))
        elif item in values:
            found.add(item)
    return frozenset(found)


def _uid_list(values: frozenset[str] | set[str]) -> str:
    r"""A DICOM list-of-values match. UIDs cannot hold `\`, `*` or `?`, and grants refuse
    PatientIDs that do (services/grants.py), so each value matches only itself."""
    return "\\".join(sorted(values))

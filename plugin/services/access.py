"""Who holds which level on the resource a request names: grants from the store, resources located
through Orthanc's core.

The grant sets of callers are cached in memory and dropped at once when a grant changes on this
node (`invalidate`). Other nodes sharing the store learn of changes by polling the store's grant
version every GrantPollSeconds (a background thread), so a revocation reaches them within that
time plus one remembered decision (DecisionCacheSeconds). Expiry needs no invalidation: every
check compares the grant's expiry with the injected clock.

Orthanc ids are hashes of DICOM identifiers, so what an id names never changes: the id ->
study/patient cache is bounded, and dropped only when this node deletes something (so that lists
do not offer what is gone). UID look-ups are kept when they find exactly one resource; one that
found nothing is not repeated for a few seconds (a look-up can make Orthanc scan its index).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from plugin.errors import StoreUnavailable
from plugin.policies.grants import NEVER as NO_EXPIRY
from plugin.policies.grants import NOTHING, GrantSet, GrantTerm, Held
from plugin.policies.levels import AccessLevel, parse_level
from plugin.policies.qido import search_values
from plugin.policies.types import Action, Principal, RouteInfo
from plugin.services.core import Core, CoreError
from plugin.services.periodic import Periodic
from plugin.store import grants as grant_store
from plugin.store.db import Store

# How long a patient's list of studies is reused: bounds how late a study stored through another
# node sharing the index appears in this node's trimmed lists (this node's own are seen at once).
STUDIES_OF_PATIENT_SECONDS = 5.0
PLURAL = {"patient": "patients", "study": "studies", "series": "series", "instance": "instances"}
ORTHANC_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")
LEVEL_OF_TYPE = {"Patient": "patient", "Study": "study", "Series": "series", "Instance": "instance"}


@dataclass(frozen=True)
class Located:
    """Where a resource sits: its patient (DICOM PatientID, Orthanc id) and, below patient level,
    its study (StudyInstanceUID, Orthanc id)."""

    patient_id: str
    patient_oid: str
    study_uid: str | None = None
    study_oid: str | None = None


@dataclass(frozen=True)
class Scope:
    """What a request touches and the level held on all of it (the lowest, when several)."""

    held: Held
    located: tuple[Located, ...] = ()

    @property
    def patient_ids(self) -> str:
        return ",".join(sorted({loc.patient_id for loc in self.located}))

    @property
    def study_uids(self) -> str:
        return ",".join(sorted({loc.study_uid for loc in self.located if loc.study_uid}))


NO_SCOPE = Scope(NOTHING)


class ResourceLocator:
    """Orthanc ids and DICOM UIDs -> Located, asking the core once per resource."""

    def __init__(self, core: Core, max_entries: int = 200000, clock: Callable[[], float] = time.monotonic,
                 studies_seconds: float = STUDIES_OF_PATIENT_SECONDS) -> None:
        self._core = core
        self._max = max_entries
        self._clock = clock
        self._studies_seconds = studies_seconds
        self._by_id: dict[tuple[str, str], Located] = {}
        self._by_uid: dict[tuple[str, str], Located] = {}
        self._studies_of: dict[str, tuple[float, tuple[str, ...]]] = {}  # patient id -> (until, study ids)
        self._missing: dict[tuple[str, str], float] = {}  # (level, uid) looked up in vain -> until when

    def studies_of_patient(self, patient_oid: str) -> tuple[str, ...] | None:
        """Orthanc ids of a patient's studies (None: no such patient). Kept for a few seconds, and
        dropped at once when this node stores a new study or deletes anything."""
        hit = self._studies_of.get(patient_oid)
        now = self._clock()
        if hit is not None and hit[0] > now:
            return hit[1]
        patient = self._get(f"/patients/{patient_oid}")
        if not isinstance(patient, dict):
            self._studies_of.pop(patient_oid, None)
            return None
        studies = tuple(str(s) for s in patient.get("Studies", ()))
        if len(self._studies_of) >= self._max:
            self._studies_of.clear()
        self._studies_of[patient_oid] = (now + self._studies_seconds, studies)
        return studies

    def study_added(self, study_oid: str) -> None:
        """Orthanc stored the first instance of a study (NEW_STUDY): its patient's list is stale."""
        self._missing.clear()
        located = self.by_orthanc_id("study", study_oid)
        self._studies_of.pop(located.patient_oid if located is not None else "", None)

    def resource_deleted(self) -> None:
        """Orthanc deleted a resource (DELETED): forget everything that may name it. Deletions are
        rare; ids that still exist are found again on their next use."""
        self._by_id.clear()
        self._by_uid.clear()
        self._studies_of.clear()
        self._missing.clear()

    def by_orthanc_id(self, level: str, orthanc_id: str) -> Located | None:
        key = (level, orthanc_id)
        hit = self._by_id.get(key)
        if hit is not None:
            return hit
        resource = self._get(f"/{PLURAL[level]}/{orthanc_id}")
        if not isinstance(resource, dict):
            return None
        if level == "patient":
            found = Located(_tag(resource, "MainDicomTags", "PatientID"), orthanc_id)
        elif level == "study":
            found = Located(_tag(resource, "PatientMainDicomTags", "PatientID"), str(resource.get("ParentPatient", "")),
                            _tag(resource, "MainDicomTags", "StudyInstanceUID"), orthanc_id)
        else:
            parent_level, parent_key = ("study", "ParentStudy") if level == "series" else ("series", "ParentSeries")
            found = self.by_orthanc_id(parent_level, str(resource.get(parent_key, "")))
            if found is None:
                return None
        self._remember(self._by_id, key, found)
        return found

    def by_any_id(self, orthanc_id: str) -> tuple[str, Located] | None:
        """An Orthanc id of a level the caller does not say (bodies of archive and bulk tools)."""
        for level in ("study", "series", "instance", "patient"):
            found = self._by_id.get((level, orthanc_id))
            if found is not None:
                return level, found
        for level in ("study", "series", "instance", "patient"):
            found = self.by_orthanc_id(level, orthanc_id)
            if found is not None:
                return level, found
        return None

    def by_uid(self, level: str, uid: str) -> tuple[Located, ...]:
        """Every resource of `level` with this DICOM UID (the same StudyInstanceUID can exist
        under two patients); empty when there is none."""
        key = (level, uid)
        hit = self._by_uid.get(key)
        if hit is not None:
            return (hit,)
        if self._missing.get(key, 0.0) > self._clock():
            return ()
        try:
            matches = self._core.post("/tools/lookup", uid)
        except CoreError:
            return ()
        found = tuple(loc for loc in (self.by_orthanc_id(level, str(m.get("ID", ""))) for m in matches
                                      if isinstance(m, dict) and LEVEL_OF_TYPE.get(m.get("Type")) == level)
                      if loc is not None)
        if len(found) == 1:
            self._remember(self._by_uid, key, found[0])
        elif not found:
            # A lookup can cost Orthanc a scan of its index: a UID just found missing (say, a
            # granted study since deleted) is not looked up again for a few seconds.
            if len(self._missing) >= self._max:
                self._missing.clear()
            self._missing[key] = self._clock() + self._studies_seconds
        return found

    def patient_ids_like(self, patient_id: str) -> set[str]:
        """The PatientIDs equal to `patient_id` when case is ignored (as Orthanc matches them)."""
        try:
            found = self._core.post("/tools/find", json.dumps({"Level": "Patient", "Expand": True,
                                                                "CaseSensitive": False,
                                                                "Query": {"PatientID": patient_id}}))
        except CoreError:
            return set()
        return {_tag(p, "MainDicomTags", "PatientID") for p in found if isinstance(p, dict)}

    def _get(self, path: str) -> Any:
        try:
            return self._core.get(path)
        except CoreError:
            return None

    def _remember(self, cache: dict, key: tuple[str, str], value: Located) -> None:
        if len(cache) >= self._max:
            cache.clear()
        cache[key] = value


def _tag(resource: dict, group: str, name: str) -> str:
    return str((resource.get(group) or {}).get(name, ""))


class AccessService:
    """Grant sets of callers (cached, invalidated by version) and the scope of requests."""

    def __init__(self, store: Store, locator: ResourceLocator, clock: Callable[[], float] = time.time,
                 poll_seconds: float = 1.0, warn: Callable[[str], None] = lambda _m: None) -> None:
        self._store = store
        self.locator = locator
        self._clock = clock
        self._warn = warn
        self._sets: dict[str, GrantSet] = {}
        self._version: int | None = None
        self.generation = 0  # bumped by every invalidation
        self._subscribers: list[Callable[[], None]] = []
        self._poller = Periodic("gate-grant-poll", poll_seconds, self._poll_once, "grant version poll", warn)

    # -- grants ------------------------------------------------------------------------------

    def grants_of(self, username: str) -> GrantSet:
        found = self._sets.get(username)
        if found is not None:
            return found
        generation = self.generation
        now = self._clock()
        with self._store.read() as db:
            rows = grant_store.active_grants_of_user(db, username, now)
            patient_terms, study_terms, study_ids = [], [], {}
            for row in rows:
                level = parse_level(row.level)
                if level is None:
                    continue
                term = GrantTerm(level, row.expires_at if row.expires_at is not None else NO_EXPIRY)
                if row.patient_id is not None:
                    patient_terms.append((row.patient_id, term))
                elif row.study_uid is not None:
                    study_terms.append((row.study_uid, term))
                    if row.orthanc_id:
                        study_ids[row.study_uid] = row.orthanc_id
        found = GrantSet.of(patient_terms, study_terms, study_ids)
        # A set read while a grant changed may predate the change: use it, but do not keep it.
        # Once the poller has stopped, nothing would see another node's changes: keep none.
        if generation == self.generation and not self._poller.stopped:
            if len(self._sets) >= 10000:
                self._sets.clear()
            self._sets[username] = found
        return found

    def subscribe(self, forget: Callable[[], None]) -> None:
        """Call `forget` whenever grants change (the gate drops its remembered decisions)."""
        self._subscribers.append(forget)

    def invalidate(self) -> None:
        """Grants changed: forget every cached set and every decision built on one, at once."""
        self.generation += 1
        self._sets.clear()
        for forget in self._subscribers:
            forget()

    # -- what a request touches --------------------------------------------------------------

    def scope(self, principal: Principal, route: RouteInfo, now: float) -> Scope:
        """The resources `route` names and the lowest level the caller holds on them.

        For admins only the location is worked out (for the audit). Anything that cannot be
        located holds nothing. Raises StoreUnavailable when the caller's grants cannot be read.
        """
        located = self._locate(route)
        if not located:
            return NO_SCOPE
        if principal.is_admin or principal.username is None:
            return Scope(NOTHING, located)
        grants = self.grants_of(principal.username)
        return Scope(_lowest(grants, located, now), located)

    def level_on(self, principal: Principal, level: str, orthanc_id: str, now: float) -> AccessLevel | None:
        """The access level `principal` holds on one resource named by Orthanc id (None: none, or no
        such resource), as the gate would find it for a request on that resource."""
        if not ORTHANC_ID.match(orthanc_id):
            return None  # the id goes into a core path: nothing but an Orthanc id
        route = RouteInfo(PLURAL[level], Action.VIEW, "GET", f"/{PLURAL[level]}/{orthanc_id}", level=level,
                          resource_id=orthanc_id)
        return self.scope(principal, route, now).held.level

    def _locate(self, route: RouteInfo) -> tuple[Located, ...]:
        family = route.family
        if family == "web_viewer":
            # The Web Viewer names a series or an instance by Orthanc id: decided on its study.
            found = self.locator.by_orthanc_id(route.level or "", route.resource_id or "")
            return (found,) if found is not None else ()
        if family in ("patients", "studies", "series", "instances"):
            found = self.locator.by_orthanc_id(route.level or "", route.resource_id or "")
            if found is None:
                return ()
            if _names_the_patient(route):
                # /studies/{id}/patient (and of series, instances) answers the patient resource,
                # which lists every study of theirs: a patient-level read.
                return (Located(found.patient_id, found.patient_oid),)
            return (found,)
        if family == "wado":
            return self.locator.by_uid("instance", route.resource_id or "") if route.resource_id else ()
        if family == "dicomweb":
            return self.locator.by_uid("study", route.study_uid) if route.study_uid else ()
        if family == "dicomweb_search":
            return self._search_targets(route)
        if family in ("tools_archive", "tools_bulk"):
            return self._listed_targets(route)
        return ()

    def _search_targets(self, route: RouteInfo) -> tuple[Located, ...]:
        """A DICOMweb search is located by the StudyInstanceUIDs it names; failing that, by the one
        PatientID it names. Its keys were read as the DICOMweb plugin reads them, and anything the
        gate cannot read so was refused (policies/qido.py). A search naming neither is located
        nowhere (admins only)."""
        query = dict(route.query)
        uids = search_values(query.get("StudyInstanceUID", ""))
        if uids:
            found: list[Located] = []
            for uid in uids:
                matches = self.locator.by_uid("study", uid)
                if not matches:
                    return ()
                found.extend(matches)
            return tuple(found)
        patient_ids = search_values(query.get("PatientID", ""))
        # The DICOMweb plugin matches PatientID without regard to case: a search by PatientID is
        # located only when no other patient's id differs from it by case alone.
        if len(patient_ids) == 1 and self.locator.patient_ids_like(patient_ids[0]) == {patient_ids[0]}:
            return (Located(patient_ids[0], ""),)
        return ()

    def _listed_targets(self, route: RouteInfo) -> tuple[Located, ...]:
        """Resources listed by `GET /tools/create-archive?resources=a,b` (and create-media). Any id
        that cannot be located makes the whole request located nowhere. (Orthanc's request filter
        is not given request bodies, so the POST forms are admin-only: policies/routes.py.)"""
        ids = [r for r in dict(route.query).get("resources", "").split(",") if r]
        found: list[Located] = []
        for orthanc_id in ids:
            hit = self.locator.by_any_id(orthanc_id)
            if hit is None:
                return ()
            level, located = hit
            if level == "patient":
                located = Located(located.patient_id, located.patient_oid)
            found.append(located)
        return tuple(found)

    # -- keeping every node current ----------------------------------------------------------

    def start(self) -> None:
        # The version is read before any request is served when the store allows; if it does not,
        # the first successful poll drops whatever was cached meanwhile.
        try:
            self.poll()
        except Exception as exc:  # noqa: BLE001 - the poller retries; start-up must not fail here
            self._warn(f"Gate: could not read the grant version at start ({type(exc).__name__}); will keep trying")
        self._poller.start()

    def stop(self) -> None:
        """Stop polling. Grants are read from the store for every check from then on: Orthanc
        still serves requests for a moment after it tells plugins it stops."""
        self._poller.stop(timeout=5)
        self.invalidate()

    def poll(self) -> None:
        """Read the store's grant version; when another node (or gatectl) changed grants, invalidate."""
        with self._store.read() as db:
            version = grant_store.grant_version(db)
        # The first reading invalidates too: anything cached before it may predate a change.
        if version != self._version:
            self.invalidate()
        self._version = version

    def _poll_once(self) -> None:
        try:
            self.poll()
        except StoreUnavailable:
            # Revocations on other nodes cannot be seen: drop what is cached, so every check
            # asks the store (and is refused while it is down).
            self.invalidate()


def _names_the_patient(route: RouteInfo) -> bool:
    segments = route.path.lower().split("/")
    return route.level != "patient" and len(segments) == 4 and segments[3] == "patient"


def _lowest(grants: GrantSet, located: Iterable[Located], now: float) -> Held:
    """The lowest level held over every resource, until the earliest of their grants ends (after
    which the answer may be lower: a remembered decision must not outlive any of them)."""
    helds = [grants.on_patient(loc.patient_id, now) if loc.study_uid is None
             else grants.on_study(loc.patient_id, loc.study_uid, now) for loc in located]
    if not helds or any(held.level is None for held in helds):
        return NOTHING
    return Held(min(held.level for held in helds), min(held.until for held in helds))

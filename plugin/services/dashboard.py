"""The doctor dashboard: a signed-in caller's studies (newest first, searchable, paged), what is new
since their previous visit, what each study offers (preview, viewers, download, report), and the
attached PDF report itself.

Every study comes from the trimmed search the rest of the Gate uses for callers who are not admins
(services/search.py), so the page can only show what the caller may see; the report is read only
after the caller's access to its study is established, and audited.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from plugin.audit.record import AuditRecord, iso_utc, patients_named
from plugin.errors import NotFound, StoreUnavailable
from plugin.policies.dashboard import (
    STUDIES_PER_PAGE,
    StudySearch,
    became_theirs_at,
    has_dashboard_role,
    is_new,
    iso_day,
    landing_page,
    orthanc_time,
)
from plugin.policies.levels import AccessLevel
from plugin.policies.types import Principal
from plugin.services.access import ORTHANC_ID, AccessService
from plugin.services.accounts import AuditSink
from plugin.services.core import Core, CoreError
from plugin.services.search import SearchService
from plugin.services.study_contents import report_pdf, study_contents
from plugin.services.visits import record_visit
from plugin.store import dashboard as dashboard_store
from plugin.store.db import Store
from plugin.store.doctors import doctor_by_username

# What the search box looks in: any of these matching the words finds the study.
SEARCHED_TAGS = ("PatientName", "PatientID", "AccessionNumber", "StudyDescription")


@dataclass(frozen=True)
class StudyCard:
    """One study as the dashboard shows it."""

    orthanc_id: str
    study_uid: str
    patient_name: str
    patient_id: str
    birth_date: str  # YYYY-MM-DD when Orthanc has a DICOM date
    study_date: str
    modalities: tuple[str, ...]
    description: str
    accession: str
    is_new: bool
    preview_instance: str | None  # an instance of an image series (for /instances/{id}/preview)
    image_series: str | None  # that series (for the Web Viewer)
    can_download: bool
    has_report: bool
    can_share: bool = False  # the `share` level (or an admin): may make a patient's share link


@dataclass(frozen=True)
class Dashboard:
    search: StudySearch
    studies: tuple[StudyCard, ...]
    total: int  # studies matching, over every page
    new_total: int  # of those, how many are new
    page: int
    pages: int
    previous_visit_at: float | None


@dataclass(frozen=True)
class Report:
    content: bytes  # the PDF
    study_uid: str
    patient_id: str


def home_of(store: Store, principal: Principal, home_page: str) -> str:
    """Where this signed-in caller's browser lands (policies/dashboard.py's landing_page); the store
    is asked whether a doctor record is tied to the login only when the roles do not already say."""
    tied = False
    if not principal.is_anonymous and not principal.is_admin and not has_dashboard_role(principal):
        with store.read() as db:
            tied = doctor_by_username(db, principal.username or "") is not None
    return landing_page(principal, tied, home_page)


class DashboardService:
    def __init__(self, store: Store, core: Core, access: AccessService, search: SearchService, audit: AuditSink,
                 refusals: AuditSink) -> None:
        self._store = store
        self._core = core
        self._access = access
        self._search = search
        self._audit = audit  # durable: written before the answer
        self._refusals = refusals

    def view(self, principal: Principal, wanted: StudySearch, now: float, ip: str) -> Dashboard:
        """A page load: the visit is counted, then one page of the caller's studies that match, audited."""
        visit = record_visit(self._store, principal.username or "", now)
        previous = visit.previous_visit_at if visit is not None else None
        if wanted.problem:
            return Dashboard(wanted, (), 0, 0, 1, 1, previous)
        studies = sorted(self._matching(principal, wanted, now), key=_date_time_arrival, reverse=True)
        theirs_since = self._became_theirs(principal, studies, now)
        new = {oid for oid, since in theirs_since.items() if is_new(since, previous)}
        pages = max(1, math.ceil(len(studies) / STUDIES_PER_PAGE))
        start = (wanted.page - 1) * STUDIES_PER_PAGE
        shown = tuple(self._card(principal, study, study["ID"] in new, now)
                      for study in studies[start:start + STUDIES_PER_PAGE])
        self._audit_list(principal, wanted, shown, now, ip)
        return Dashboard(wanted, shown, len(studies), len(new), wanted.page, pages, previous)

    def report(self, principal: Principal, study_oid: str, now: float, ip: str, path: str) -> Report:
        """The PDF report attached to a study the caller may see; NotFound for a study that is not
        theirs, not there, or has no report (which of these is not told)."""
        located = self._access.locator.by_orthanc_id("study", study_oid) if ORTHANC_ID.match(study_oid) else None
        level = None if located is None or principal.is_admin else \
            self._access.level_on(principal, "study", study_oid, now)
        if located is None or (level is None and not principal.is_admin):
            self._refusals(self._report_record(principal, "deny", "no grant for this study", study_oid, "", "",
                                               now, ip, path))
            raise NotFound("No such report")
        instance = study_contents(self._core, study_oid).report_instance
        content = report_pdf(self._core, instance) if instance is not None else None
        if content is None:
            raise NotFound("No such report")
        reason = "admin" if principal.is_admin else f"grant {level.label if level else ''}"
        record = self._report_record(principal, "allow", reason, study_oid, located.patient_id,
                                     located.study_uid or "", now, ip, path, instance)
        if not self._audit(record):
            raise StoreUnavailable("The audit could not be written; the report is not shown")
        return Report(content, located.study_uid or "", located.patient_id)

    def card(self, principal: Principal, study_oid: str, now: float) -> StudyCard:
        """One study as the dashboard shows it, for a caller whose access to it is already checked
        (the share form: ShareService.shareable); NotFound when Orthanc no longer has it."""
        try:
            study = self._core.get(f"/studies/{study_oid}")
        except CoreError:
            raise NotFound("No such study") from None
        return self._card(principal, study, False, now)

    # -- the studies -------------------------------------------------------------------------------

    def _matching(self, principal: Principal, wanted: StudySearch, now: float) -> list[dict[str, Any]]:
        """The caller's studies (expanded) that match: through the trimmed /tools/find, once per
        searched tag when there are words (any tag may match), the date range and modality in each."""
        common: dict[str, str] = {}
        if wanted.date_range:
            common["StudyDate"] = wanted.date_range
        if wanted.modality:
            common["ModalitiesInStudy"] = wanted.modality
        queries = [{tag: wanted.pattern, **common} for tag in SEARCHED_TAGS] if wanted.words else [common]
        found: dict[str, dict[str, Any]] = {}
        for query in queries:
            request = {"Level": "Study", "Expand": True, "CaseSensitive": False, "Query": query}
            for study in self._search.find(principal, request, now, in_core_order=True):
                if isinstance(study, dict) and isinstance(study.get("ID"), str):
                    found.setdefault(study["ID"], study)
        return list(found.values())

    def _became_theirs(self, principal: Principal, studies: list[dict[str, Any]],
                       now: float) -> dict[str, float | None]:
        """Study id -> when it became the caller's (their earliest live grant on it or its patient,
        or its last arrival, whichever is later)."""
        with self._store.read() as db:
            rows = dashboard_store.grant_times_of_user(db, principal.username or "", now)
        by_patient: dict[str, list[float]] = defaultdict(list)
        by_study: dict[str, list[float]] = defaultdict(list)
        for patient_id, study_uid, created_at in rows:
            if patient_id is not None:
                by_patient[patient_id].append(created_at)
            elif study_uid is not None:
                by_study[study_uid].append(created_at)
        since = {}
        for study in studies:
            patient_id = _tag(study, "PatientMainDicomTags", "PatientID")
            uid = _tag(study, "MainDicomTags", "StudyInstanceUID")
            since[study["ID"]] = became_theirs_at([*by_patient.get(patient_id, ()), *by_study.get(uid, ())],
                                                  orthanc_time(str(study.get("LastUpdate", ""))))
        return since

    def _card(self, principal: Principal, study: dict[str, Any], new: bool, now: float) -> StudyCard:
        oid = study["ID"]
        summary = study_contents(self._core, oid)
        level = None if principal.is_admin else self._access.level_on(principal, "study", oid, now)
        return StudyCard(
            orthanc_id=oid, study_uid=_tag(study, "MainDicomTags", "StudyInstanceUID"),
            patient_name=_person_name(_tag(study, "PatientMainDicomTags", "PatientName")),
            patient_id=_tag(study, "PatientMainDicomTags", "PatientID"),
            birth_date=iso_day(_tag(study, "PatientMainDicomTags", "PatientBirthDate")),
            study_date=iso_day(_tag(study, "MainDicomTags", "StudyDate")), modalities=summary.modalities,
            description=_tag(study, "MainDicomTags", "StudyDescription"),
            accession=_tag(study, "MainDicomTags", "AccessionNumber"), is_new=new,
            preview_instance=summary.preview_instance, image_series=summary.image_series,
            can_download=principal.is_admin or (level is not None and level >= AccessLevel.DOWNLOAD),
            has_report=summary.report_instance is not None,
            can_share=principal.is_admin or (level is not None and level >= AccessLevel.SHARE))

    # -- audit -------------------------------------------------------------------------------------

    def _audit_list(self, principal: Principal, wanted: StudySearch, shown: Iterable[StudyCard], now: float,
                    ip: str) -> None:
        cards = list(shown)
        named, listed = patients_named(c.patient_id for c in cards)
        detail = {"returned": len(cards), "page": wanted.page, "search": {
            "q": wanted.text, "from": wanted.date_from, "to": wanted.date_to, "modality": wanted.modality}, **listed}
        record = AuditRecord(ts=iso_utc(now), actor=principal.username or "", action="list", outcome="allow",
                             reason="admin" if principal.is_admin else "answer trimmed to grants",
                             roles=",".join(sorted(principal.roles)), source_ip=ip, method="GET",
                             path="/gate/doctor", route_class="doctor_dashboard",
                             patient_id=named,
                             detail=json.dumps(detail))
        if not self._audit(record):
            raise StoreUnavailable("The audit could not be written; the studies are not shown")

    @staticmethod
    def _report_record(principal: Principal, outcome: str, reason: str, study_oid: str, patient_id: str,
                       study_uid: str, now: float, ip: str, path: str, instance: str = "") -> AuditRecord:
        return AuditRecord(ts=iso_utc(now), actor=principal.username or "", action="view", outcome=outcome,
                           reason=reason, roles=",".join(sorted(principal.roles)), source_ip=ip, method="GET",
                           path=path[:512], route_class="doctor_report", level="study",
                           orthanc_id=study_oid[:128], patient_id=patient_id[:128], study_uid=study_uid[:128],
                           detail=json.dumps({"instance": instance}) if instance else "")


def _date_time_arrival(study: dict[str, Any]) -> tuple[str, str, str]:
    """Sort key: StudyDate, StudyTime, then arrival (LastUpdate); sorted in reverse, a study without
    a date comes last."""
    return (_tag(study, "MainDicomTags", "StudyDate"), _tag(study, "MainDicomTags", "StudyTime"),
            str(study.get("LastUpdate", "")))


def _tag(resource: Any, group: str, name: str) -> str:
    tags = resource.get(group) if isinstance(resource, dict) else None
    value = tags.get(name, "") if isinstance(tags, dict) else ""
    return value if isinstance(value, str) else ""


def _person_name(value: str) -> str:
    """A DICOM person name for people: `Nkosi^Thandi` as `Nkosi, Thandi` (the other components kept)."""
    parts = [p for p in value.split("^") if p]
    return ", ".join(parts[:2]) + (" " + " ".join(parts[2:]) if len(parts) > 2 else "")

"""services/dashboard.py (with services/visits.py): a caller's studies through the trimmed search, newest
first and paged, searchable, marked new since the previous visit, with what each offers (preview, viewer
series, download, report); the report itself only for the caller's studies, audited. A fake Orthanc core
(tests/unit/fake_core.py, with the few routes the dashboard adds) and a real store."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from plugin.audit.record import AuditRecord
from plugin.errors import NotFound, StoreUnavailable
from plugin.policies.dashboard import DASHBOARD_PATH, STUDIES_PER_PAGE, VISIT_GAP_SECONDS, read_search
from plugin.policies.types import Principal
from plugin.services.access import AccessService, ResourceLocator
from plugin.services.dashboard import DashboardService, home_of
from plugin.services.search import SearchService
from plugin.store import accounts
from plugin.store import grants as grant_store
from plugin.store.db import Store
from plugin.store.doctors import add_doctor
from plugin.store.models import Doctor, Grant, User
from tests.unit.conftest import T0
from tests.unit.fake_core import FakeCore, StudyIds, orthanc_id

DOCTOR = Principal("drnkosi", frozenset({"referring_doctor"}), "session")
ADMIN = Principal("root1", frozenset({"admin"}), "session")
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
PDF = b"%PDF-1.4 a report\n%%EOF"  # odd length: stored padded with one NUL


def orthanc_stamp(epoch: float) -> str:
    """LastUpdate as Orthanc writes it (UTC, to the second)."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(epoch))


class DashboardCore(FakeCore):
    """The fake core, with studies of several slices, dates and descriptions, and StudyDate ranges."""

    def add(self, patient_id: str, study_uid: str, *, date: str = "20240101", time: str = "", modality: str = "CT",
            name: str = "", description: str = "", accession: str = "", arrived: float = T0 - 86400,
            slices: int = 1) -> StudyIds:
        ids = self.add_study(patient_id, study_uid, modality=modality, accession=accession)
        study = self.resources[f"/studies/{ids.study}"]
        study["MainDicomTags"].update({"StudyDate": date, "StudyTime": time, "StudyDescription": description})
        study["LastUpdate"] = orthanc_stamp(arrived)
        for tags in (self.resources[f"/patients/{ids.patient}"]["MainDicomTags"], study["PatientMainDicomTags"]):
            tags.update({"PatientBirthDate": "19700102", **({"PatientName": name} if name else {})})
        series = self.resources[f"/series/{ids.series}"]
        for number in range(2, slices + 1):
            extra = orthanc_id(patient_id, study_uid, ids.series_uid, f"{ids.sop_uid}.{number}")
            self.resources[f"/instances/{extra}"] = {"ID": extra, "Type": "Instance", "ParentSeries": ids.series,
                                                     "MainDicomTags": {"SOPInstanceUID": f"{ids.sop_uid}.{number}"}}
            series["Instances"].append(extra)
        for instance in series["Instances"]:
            self.sop_classes[instance] = CT_IMAGE
        return ids

    def _find(self, request: dict[str, Any]) -> list[Any]:
        """As the fake's, with StudyDate ranges ("a-b", "a-", "-b") as Orthanc reads them."""
        query = dict(request.get("Query", {}))
        dates = query.pop("StudyDate", "")
        if "-" not in dates:
            return super()._find(request) if not dates else super()._find(
                {**request, "Query": {**query, "StudyDate": dates}})
        low, high = dates.split("-")
        found = super()._find({**request, "Query": query, "Expand": True})
        kept = [s for s in found if (low or "0") <= s["MainDicomTags"].get("StudyDate", "") <= (high or "9")]
        return kept if request.get("Expand") else [s["ID"] for s in kept]


@pytest.fixture
def core() -> DashboardCore:
    return DashboardCore()


@pytest.fixture
def audit() -> list[AuditRecord]:
    return []


@pytest.fixture
def refusals() -> list[AuditRecord]:
    return []


@pytest.fixture
def access(store, core, clock) -> AccessService:
    return AccessService(store, ResourceLocator(core, clock=clock), clock=clock)


@pytest.fixture
def service(store, core, access, audit, refusals) -> DashboardService:
    store_users(store, "drnkosi", "root1", "other")
    return DashboardService(store, core, access, SearchService(core, access), lambda r: audit.append(r) or True,
                            lambda r: refusals.append(r) or True)


def store_users(store: Store, *names: str) -> None:
    with store.transaction() as db:
        for name in names:
            accounts.add_user(db, User(username=name, roles="referring_doctor", created_at=T0, updated_at=T0))


def grant(store: Store, level: str = "view_only", *, user: str | None = "drnkosi", doctor: int | None = None,
          patient_id: str | None = None, study_uid: str | None = None, at: float = T0 - 3 * 86400,
          expires_at: float | None = None) -> None:
    with store.transaction() as db:
        grant_store.add_grants(db, [Grant(
            subject_user=None if doctor is not None else user, subject_doctor_id=doctor, patient_id=patient_id,
            study_uid=study_uid, level=level, expires_at=expires_at, source="manual", created_at=at,
            created_by="test")])


def visits_of(store: Store, username: str = "drnkosi") -> tuple[float | None, float | None]:
    with store.read() as db:
        user = accounts.user_by_name(db, username)
        return user.visit_at, user.previous_visit_at


def set_visits(store: Store, visit_at: float | None, previous: float | None, username: str = "drnkosi") -> None:
    with store.transaction() as db:
        user = accounts.user_by_name(db, username)
        user.visit_at, user.previous_visit_at = visit_at, previous


def view(service: DashboardService, principal: Principal = DOCTOR, now: float = T0, **params: str):
    return service.view(principal, read_search(params), now, "10.0.0.9")


# -- what is shown -----------------------------------------------------------------------------------


def test_only_the_callers_studies_are_shown_newest_first(service, core, store):
    old = core.add("PAT-1", "1.1", date="20230105", name="NKOSI^THANDI")
    new = core.add("PAT-1", "1.2", date="20240301", time="101500", name="NKOSI^THANDI")
    same_day_earlier = core.add("PAT-2", "2.1", date="20240301", time="081500")
    core.add("PAT-3", "3.1", date="20250101", name="NOT^THEIRS")
    grant(store, patient_id="PAT-1")
    grant(store, study_uid="2.1")
    board = view(service)
    assert [s.orthanc_id for s in board.studies] == [new.study, same_day_earlier.study, old.study]
    assert board.total == 3 and board.pages == 1 and board.page == 1
    first = board.studies[0]
    assert (first.patient_name, first.patient_id, first.birth_date, first.study_date, first.study_uid) == \
        ("NKOSI, THANDI", "PAT-1", "1970-01-02", "2024-03-01", "1.2")


def test_arrival_orders_studies_of_the_same_date_and_time(service, core, store):
    first = core.add("PAT-1", "1.1", arrived=T0 - 500)
    later = core.add("PAT-1", "1.2", arrived=T0 - 100)
    grant(store, patient_id="PAT-1")
    assert [s.orthanc_id for s in view(service).studies] == [later.study, first.study]


def test_a_caller_without_grants_sees_nothing_and_orthanc_is_not_searched(service, core):
    core.add("PAT-1", "1.1")
    board = view(service, Principal("other", frozenset({"referring_doctor"}), "session"))
    assert board.studies == () and board.total == 0
    assert core.finds == []


def test_expired_and_revoked_grants_show_nothing(service, core, store):
    core.add("PAT-1", "1.1")
    grant(store, patient_id="PAT-1", expires_at=T0 - 1)
    assert view(service).total == 0


def test_a_doctors_grants_reach_the_login_tied_to_them(service, core, store):
    core.add("PAT-1", "1.1")
    with store.transaction() as db:
        doctor = add_doctor(db, Doctor(hpcsa_number="MP0123456", last_name="Nkosi", username="drnkosi",
                                       created_at=T0, updated_at=T0))
    grant(store, doctor=doctor.id, study_uid="1.1")
    assert [s.study_uid for s in view(service).studies] == ["1.1"]


def test_studies_are_paged(service, core, store):
    for number in range(STUDIES_PER_PAGE + 3):
        core.add("PAT-1", f"1.{number}", date=f"2024{1 + number // 28:02d}{1 + number % 28:02d}")
    grant(store, patient_id="PAT-1")
    first, second = view(service), view(service, page="2")
    assert (first.total, first.pages, len(first.studies)) == (STUDIES_PER_PAGE + 3, 2, STUDIES_PER_PAGE)
    assert (second.page, len(second.studies)) == (2, 3)
    assert not {s.orthanc_id for s in first.studies} & {s.orthanc_id for s in second.studies}
    assert view(service, page="3").studies == ()


def test_the_studies_are_found_by_one_trimmed_find(service, core, store):
    for number in range(5):
        core.add("PAT-1", f"1.{number}")
    core.add("PAT-2", "2.1")
    grant(store, patient_id="PAT-1")
    view(service)
    [find] = core.finds
    assert find["Level"] == "Study" and find["Expand"] is True
    assert set(find["Query"]["StudyInstanceUID"].split("\\")) == {f"1.{n}" for n in range(5)}


# -- search ------------------------------------------------------------------------------------------


@pytest.fixture
def searchable(service, core, store) -> dict[str, StudyIds]:
    found = {
        "chest": core.add("PAT-1", "1.1", name="NKOSI^THANDI", description="CT CHEST", accession="ACC-771",
                          date="20240105"),
        "knee": core.add("PAT-2", "2.1", name="DLAMINI^SIPHO", description="MR KNEE", modality="MR",
                         date="20240620"),
        "old": core.add("RAD-0042", "3.1", name="VAN WYK^ANNA", description="US ABDOMEN", modality="US",
                        date="20230311"),
    }
    core.add("PAT-9", "9.1", name="NKOSI^OTHER", description="CT CHEST", accession="ACC-772", date="20240105")
    for key in ("PAT-1", "PAT-2", "RAD-0042"):
        grant(store, patient_id=key)
    return found


@pytest.mark.parametrize(("params", "expected"), [
    ({"q": "nkosi"}, ["chest"]),  # the other NKOSI is not theirs
    ({"q": "NKOSI TH"}, ["chest"]),
    ({"q": "nko tha"}, ["chest"]),
    ({"q": "thandi nkosi"}, []),  # words in the order of the name
    ({"q": "rad-0042"}, ["old"]),  # PatientID, whatever the case
    ({"q": "acc-77"}, ["chest"]),  # accession number
    ({"q": "knee"}, ["knee"]),  # description
    ({"q": "ct"}, ["chest"]),
    ({"q": "an"}, ["chest", "old"]),  # THANDI; VAN WYK^ANNA
    ({"q": "k"}, ["knee", "chest", "old"]),  # NKOSI; MR KNEE; WYK: any of the fields
    ({"modality": "MR"}, ["knee"]),
    ({"from": "2024-01-01"}, ["knee", "chest"]),
    ({"from": "2024-01-01", "to": "2024-03-01"}, ["chest"]),
    ({"to": "2023-12-31"}, ["old"]),
    ({"q": "nkosi", "modality": "MR"}, []),
    ({"q": "acc-772"}, []),  # another patient's accession number
])
def test_search(service, searchable, params, expected):
    board = view(service, **params)
    assert [s.orthanc_id for s in board.studies] == [searchable[key].study for key in expected]
    assert board.total == len(expected)


def test_a_bad_search_shows_nothing_asks_nothing_and_says_why(service, core, searchable):
    board = view(service, q="x" * 100)
    assert board.search.problem and board.studies == () and core.finds == []


# -- new since the previous visit -------------------------------------------------------------------


def test_every_page_load_is_a_visit_and_marks_stay_during_one(service, core, store, clock):
    core.add("PAT-1", "1.1", arrived=T0 - 86400)
    grant(store, patient_id="PAT-1", at=T0 - 86400)
    first = view(service, now=T0)
    assert first.studies[0].is_new and first.previous_visit_at is None  # a first visit: all is new
    assert visits_of(store) == (T0, None)
    core.add("PAT-1", "1.2", arrived=T0 + 600)  # arrives during the visit
    clock.advance(60)  # the patient's list of studies is read again (entry.py also says so at once)
    during = view(service, now=T0 + 1200)
    assert [s.is_new for s in during.studies] == [True, True] and visits_of(store) == (T0 + 1200, None)
    later = T0 + 1200 + VISIT_GAP_SECONDS + 1
    after = view(service, now=later)
    assert [s.is_new for s in after.studies] == [False, False] and after.new_total == 0
    assert visits_of(store) == (later, T0 + 1200)


def test_new_studies_are_those_granted_or_arrived_after_the_previous_visit(service, core, store):
    previous = T0 - 3600
    set_visits(store, previous, previous - 86400)
    seen = core.add("PAT-1", "1.1", date="20240101", arrived=previous - 600)
    arrived = core.add("PAT-1", "1.2", date="20230101", arrived=previous + 600)  # a granted patient's new study
    granted_late = core.add("PAT-2", "2.1", date="20220101", arrived=previous - 86400)
    core.add("PAT-3", "3.1", arrived=previous + 600)  # not theirs
    grant(store, patient_id="PAT-1", at=previous - 86400)
    grant(store, study_uid="2.1", at=previous + 60)
    board = view(service, now=T0)
    assert {s.orthanc_id: s.is_new for s in board.studies} == {
        seen.study: False, arrived.study: True, granted_late.study: True}
    assert board.new_total == 2 and board.previous_visit_at == previous


def test_a_caller_without_an_account_row_is_shown_everything_as_new(service, core, store):
    core.add("PAT-1", "1.1")
    grant(store, user="ghost", patient_id="PAT-1")
    board = view(service, Principal("ghost", frozenset({"radiologist"}), "basic"))
    assert board.studies[0].is_new and board.previous_visit_at is None


# -- what each study offers --------------------------------------------------------------------------


def test_preview_viewer_series_and_report(service, core, store):
    ids = core.add("PAT-1", "1.1", slices=3)
    report = core.add_report(ids)
    plain = core.add("PAT-2", "2.1", modality="SR")  # nothing to preview
    grant(store, patient_id="PAT-1")
    grant(store, study_uid="2.1")
    cards = {s.orthanc_id: s for s in view(service).studies}
    card = cards[ids.study]
    series = core.resources[f"/series/{ids.series}"]
    assert card.preview_instance == series["Instances"][1] and card.preview_instance != report
    assert card.image_series == ids.series and card.has_report
    assert card.modalities == ("CT", "DOC")
    other = cards[plain.study]
    assert (other.preview_instance, other.image_series, other.has_report, other.modalities) == (None, None, False,
                                                                                                  ("SR",))


@pytest.mark.parametrize(("level", "can_download"), [("view_only", False), ("download", True), ("full", True)])
def test_download_only_from_the_download_level(service, core, store, level, can_download):
    core.add("PAT-1", "1.1")
    grant(store, level, patient_id="PAT-1")
    assert view(service).studies[0].can_download is can_download


def test_the_better_of_a_patient_and_a_study_grant_decides_download(service, core, store):
    core.add("PAT-1", "1.1")
    grant(store, "view_only", patient_id="PAT-1")
    grant(store, "download", study_uid="1.1")
    assert view(service).studies[0].can_download


def test_an_unreadable_study_is_shown_without_extras(service, core, store):
    ids = core.add("PAT-1", "1.1")
    grant(store, patient_id="PAT-1")
    core.fail.add(f"/studies/{ids.study}/series")
    card = view(service).studies[0]
    assert (card.preview_instance, card.has_report, card.modalities) == (None, False, ())


# -- audit -------------------------------------------------------------------------------------------


def test_the_page_is_audited_with_whose_studies_it_showed(service, core, store, audit):
    core.add("PAT-1", "1.1")
    core.add("PAT-2", "2.1")
    grant(store, patient_id="PAT-1")
    grant(store, patient_id="PAT-2")
    view(service, q="nam")
    [record] = audit
    assert (record.actor, record.action, record.outcome, record.route_class, record.patient_id, record.source_ip) == \
        ("drnkosi", "list", "allow", "doctor_dashboard", "PAT-1,PAT-2", "10.0.0.9")
    assert json.loads(record.detail)["returned"] == 2 and json.loads(record.detail)["search"]["q"] == "nam"


def test_no_page_without_its_audit(store, core, access):
    store_users(store, "drnkosi")
    core.add("PAT-1", "1.1")
    grant(store, patient_id="PAT-1")
    failing = DashboardService(store, core, access, SearchService(core, access), lambda r: False, lambda r: True)
    with pytest.raises(StoreUnavailable):
        view(failing)


# -- the report ----------------------------------------------------------------------------------------


def test_the_report_of_a_study_of_theirs_is_its_pdf_audited(service, core, store, audit):
    ids = core.add("PAT-1", "1.1")
    instance = core.add_report(ids)
    grant(store, study_uid="1.1")
    found = service.report(DOCTOR, ids.study, T0, "10.0.0.9", f"/gate/doctor/studies/{ids.study}/report")
    assert found.content == PDF and (found.study_uid, found.patient_id) == ("1.1", "PAT-1")
    [record] = audit
    assert (record.action, record.outcome, record.route_class, record.orthanc_id, record.study_uid,
            record.patient_id, record.reason) == ("view", "allow", "doctor_report", ids.study, "1.1", "PAT-1",
                                                  "grant view_only")
    assert json.loads(record.detail) == {"instance": instance}


def test_an_admin_may_read_any_report(service, core, audit):
    ids = core.add("PAT-1", "1.1")
    core.add_report(ids)
    assert service.report(ADMIN, ids.study, T0, "", "/x").content == PDF
    assert audit[0].reason == "admin"


@pytest.mark.parametrize("case", ["not theirs", "no such study", "not an id", "no report", "revoked"])
def test_a_report_that_is_not_theirs_is_not_found_alike(service, core, store, audit, refusals, case):
    theirs = core.add("PAT-1", "1.1")
    other = core.add("PAT-2", "2.1")
    core.add_report(other)
    grant(store, study_uid="1.1", expires_at=T0 - 1 if case == "revoked" else None)
    if case == "revoked":
        core.add_report(theirs)
    study = {"not theirs": other.study, "no such study": orthanc_id("PAT-7", "7.1"), "not an id": "../../tools/find",
             "no report": theirs.study, "revoked": theirs.study}[case]
    with pytest.raises(NotFound) as refused:
        service.report(DOCTOR, study, T0, "10.0.0.9", "/gate/doctor/studies/x/report")
    assert refused.value.message == "No such report"
    assert audit == []
    assert not any(path.endswith("/content/0042-0011") for _method, path in core.calls)
    if case in ("not theirs", "revoked"):
        assert refusals and refusals[0].outcome == "deny"


def test_no_report_without_its_audit(store, core, access):
    ids = core.add("PAT-1", "1.1")
    core.add_report(ids)
    failing = DashboardService(store, core, access, SearchService(core, access), lambda r: False, lambda r: True)
    with pytest.raises(StoreUnavailable):
        failing.report(ADMIN, ids.study, T0, "", "/x")


# -- where a signed-in browser lands -------------------------------------------------------------------


@pytest.mark.parametrize(("username", "roles", "tied", "lands"), [
    ("drnkosi", {"referring_doctor"}, False, DASHBOARD_PATH),
    ("rad", {"radiologist"}, False, DASHBOARD_PATH),
    ("clerk", {"billing"}, True, DASHBOARD_PATH),
    ("clerk", {"billing"}, False, "/home"),
    ("root1", {"admin"}, True, "/home"),
])
def test_home_of(store, username, roles, tied, lands):
    if tied:
        with store.transaction() as db:
            add_doctor(db, Doctor(hpcsa_number="MP0123456", last_name="Nkosi", username=username, created_at=T0,
                                  updated_at=T0))
    assert home_of(store, Principal(username, frozenset(roles), "session"), "/home") == lands

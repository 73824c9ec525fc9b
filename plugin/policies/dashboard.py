"""The doctor dashboard's rules (pure): who lands on it, what a visit is, which studies are new,
and how its search box is read."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import unquote_plus, urlencode

from plugin.policies.types import Principal, Role

DASHBOARD_PATH = "/gate/doctor"
# Roles whose home is the dashboard (a login tied to a doctor record lands there too).
DASHBOARD_ROLES = frozenset({Role.REFERRING_DOCTOR.value, Role.RADIOLOGIST.value})
# Page loads closer together than this are one visit: what was new stays marked while it lasts.
VISIT_GAP_SECONDS = 30 * 60
STUDIES_PER_PAGE = 25
MAX_PAGE = 10000
MAX_TEXT = 64
# Modalities offered in the search form; any other short DICOM code string is accepted too.
MODALITIES = ("CT", "MR", "US", "CR", "DX", "MG", "NM", "PT", "XA", "RF", "OT", "DOC")
_MODALITY = re.compile(r"[A-Z0-9]{1,16}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ISO_DATE = re.compile(r"([0-9]{4})-?([0-9]{2})-?([0-9]{2})")
_DIGITS = re.compile(r"[0-9]{1,6}")


# -- where a signed-in browser lands ------------------------------------------------------------


def has_dashboard_role(principal: Principal) -> bool:
    """Whether the roles alone make the dashboard this caller's home (no store look-up needed)."""
    return not principal.is_admin and bool(principal.roles & DASHBOARD_ROLES)


def landing_page(principal: Principal, tied_to_doctor: bool, home_page: str) -> str:
    """The home of a signed-in caller: the dashboard for doctors (by role, or by a doctor record
    tied to their login) who are not admins; HomePage for everyone else."""
    if principal.is_anonymous or principal.is_admin:
        return home_page
    return DASHBOARD_PATH if has_dashboard_role(principal) or tied_to_doctor else home_page


# -- visits and what is new ---------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    visit_at: float
    previous_visit_at: float | None


def next_visit(visit_at: float | None, previous_visit_at: float | None, now: float) -> Visit:
    """A page load at `now`: one more than VISIT_GAP_SECONDS after the last starts a new visit (the
    last one becomes the previous visit); a closer one continues the visit, so what was new at its
    start stays marked."""
    if visit_at is not None and now - visit_at > VISIT_GAP_SECONDS:
        previous_visit_at = visit_at
    return Visit(now, previous_visit_at)


def became_theirs_at(grant_times: Iterable[float], last_update: float | None) -> float | None:
    """When a study became the caller's to see: the later of its earliest live grant and the last
    time Orthanc received an image of it (a granted patient's new study, images added later)."""
    times = list(grant_times)
    moments = [t for t in (min(times) if times else None, last_update) if t is not None]
    return max(moments) if moments else None


def is_new(became_theirs: float | None, previous_visit_at: float | None) -> bool:
    """New since the previous visit; before a first visit everything is new."""
    if previous_visit_at is None:
        return True
    return became_theirs is not None and became_theirs > previous_visit_at


def orthanc_time(value: str) -> float | None:
    """Orthanc's LastUpdate ("20241204T101500", UTC) as epoch seconds; None when unreadable."""
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=UTC).timestamp()
    except (TypeError, ValueError):
        return None


# -- the search box -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySearch:
    """What the dashboard was asked for: words, a date range (DICOM YYYYMMDD), a modality and a page;
    `problem` says what was wrong with it (the page then shows no studies, and says so)."""

    text: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    page: int = 1
    problem: str | None = None

    @property
    def words(self) -> list[str]:
        return self.text.split()

    @property
    def pattern(self) -> str:
        """The words as a DICOM wildcard match: each in turn, anything around and between them."""
        return "*" + "*".join(self.words) + "*" if self.words else ""

    @property
    def date_range(self) -> str:
        if not (self.date_from or self.date_to):
            return ""
        return f"{self.date_from}-{self.date_to}" if self.date_from != self.date_to else self.date_from

    @property
    def is_filtered(self) -> bool:
        return bool(self.words or self.date_range or self.modality)

    def query_string(self, page: int) -> str:
        """This search's query string for another of its pages."""
        asked = {"q": self.text, "from": iso_day(self.date_from), "to": iso_day(self.date_to),
                 "modality": self.modality, "page": str(page) if page > 1 else ""}
        return urlencode({key: value for key, value in asked.items() if value})


def read_search(query: Mapping[str, str]) -> StudySearch:
    """The dashboard's query string (`q`, `from`, `to`, `modality`, `page`), checked. Orthanc hands
    plugins query values as received, so they are percent-decoded here (a form sends spaces as +)."""
    params = {key: unquote_plus(value, errors="replace") for key, value in query.items()}
    text = params.get("q", "")
    raw_from, raw_to = params.get("from", "").strip(), params.get("to", "").strip()
    modality = params.get("modality", "").strip().upper()
    raw_page = params.get("page", "").strip() or "1"
    echo = StudySearch(text[:MAX_TEXT], raw_from[:10], raw_to[:10], modality[:16])
    problem = _text_problem(text)
    date_from, problem_from = _date(raw_from, "from")
    date_to, problem_to = _date(raw_to, "to")
    problem = problem or problem_from or problem_to
    if not problem and date_from and date_to and date_from > date_to:
        problem = "the 'from' date is after the 'to' date"
    if not problem and modality and not _MODALITY.fullmatch(modality):
        problem = "a modality is a short code such as CT or MR"
    page = int(raw_page) if _DIGITS.fullmatch(raw_page) else 0
    if not problem and not 1 <= page <= MAX_PAGE:
        problem = "the page must be a whole number from 1"
    if problem:
        return StudySearch(echo.text, echo.date_from, echo.date_to, echo.modality, 1, problem)
    return StudySearch(" ".join(text.split()), date_from, date_to, modality, page)


def _text_problem(text: str) -> str | None:
    if len(text) > MAX_TEXT:
        return f"the search text may be at most {MAX_TEXT} characters"
    if _CONTROL.search(text):
        return "the search text holds a control character"
    if "\ufffd" in text:
        return "the search text is not valid UTF-8"
    if "\\" in text:
        return "the search text may not hold a backslash"
    return None


def _date(value: str, name: str) -> tuple[str, str | None]:
    """A date typed as YYYY-MM-DD (what a date field sends) or YYYYMMDD: (YYYYMMDD, problem)."""
    if not value:
        return "", None
    found = _ISO_DATE.fullmatch(value)
    try:
        if found is None:
            raise ValueError
        day = date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
    except ValueError:
        return "", f"the '{name}' date must be a real date written YYYY-MM-DD"
    return f"{day.year:04d}{day.month:02d}{day.day:02d}", None


def iso_day(dicom_date: str) -> str:
    """YYYYMMDD as YYYY-MM-DD for people and date fields (anything else unchanged)."""
    if len(dicom_date) == 8 and dicom_date.isdigit():
        return f"{dicom_date[:4]}-{dicom_date[4:6]}-{dicom_date[6:]}"
    return dicom_date


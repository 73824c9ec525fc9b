"""Plain value types the policies decide over: who is calling, what they ask for, the answer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Role(enum.StrEnum):
    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    REFERRING_DOCTOR = "referring_doctor"
    TRANSCRIPTIONIST = "transcriptionist"
    BILLING = "billing"
    RADIOGRAPHER = "radiographer"


ROLE_NAMES = frozenset(r.value for r in Role)


class Action(enum.StrEnum):
    """What a request does to the resource it names."""

    LIST = "list"
    VIEW = "view"
    DOWNLOAD = "download"
    ANNOTATE = "annotate"  # store annotations, key images or labels in a study
    REPORT = "report"  # attach a report to a study
    SHARE = "share"  # create a patient share link
    MODIFY = "modify"
    DELETE = "delete"
    ADMIN = "admin"
    PUBLIC = "public"  # login page, health, static assets: carries no patient data


@dataclass(frozen=True)
class Principal:
    """The identified caller. `username` is None for anonymous callers."""

    username: str | None
    roles: frozenset[str] = frozenset()
    via: str = "anonymous"  # anonymous | session | basic | api_key
    must_change_password: bool = False
    session_id: str | None = None  # store key of the session (a hash), when via == "session"
    mfa_pending: bool = False  # signed in with a password, a one-time code (or enrolment) still owed
    mfa_done: bool = False  # this session proved a one-time code (at sign-in, enrolment or since)

    @property
    def is_anonymous(self) -> bool:
        return self.username is None

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN.value in self.roles


ANONYMOUS = Principal(username=None)


@dataclass(frozen=True)
class RouteInfo:
    """What Orthanc (or our plugin) will execute for a request, as the gate understands it.

    `family` names the route family (one row per family in the route table); `level` and
    `resource_id` name the Orthanc resource when the path carries one; `carries_phi` says whether
    the answer can contain patient data, which decides whether the decision is audited.
    """

    family: str
    action: Action
    method: str  # the method Orthanc will execute, after overrides
    path: str  # normalised path (decoded, no duplicate or trailing slashes)
    carries_phi: bool = True
    level: str | None = None  # patient | study | series | instance
    resource_id: str | None = None  # Orthanc id, or a DICOM UID for DICOMweb/WADO
    study_uid: str | None = None
    own_route: bool = False  # served by the plugin's own REST callbacks, which authorise themselves
    trimmed: bool = False  # a search or list the plugin answers itself, trimmed to the caller's grants
    query: tuple[tuple[str, str], ...] = ()  # what a search is about: (StudyInstanceUID | PatientID |
    # resources, value as received)
    query_problem: str | None = None  # why a search's query cannot be read as Orthanc will read it
    query_string: str = ""  # a search's whole query, for the audit
    malformed: str | None = None  # set when the request cannot be classified safely


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    @staticmethod
    def allow(reason: str) -> Decision:
        return Decision(True, reason)

    @staticmethod
    def deny(reason: str) -> Decision:
        return Decision(False, reason)


@dataclass(frozen=True)
class RequestFacts:
    """The parts of an HTTP request the policies look at, already extracted from Orthanc's call."""

    method: str
    uri: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

"""DICOMweb search (QIDO-RS) query keys, read exactly as the DICOMweb plugin reads them, or refused.

The DICOMweb plugin (1.7 on Debian 12, 1.20 on Debian 13; Plugin/QidoRs.cpp) takes each query key
as it arrives, not percent-decoded: `limit`, `offset`, `fuzzymatching` and `includefield` exactly
so spelt; any other key that Orthanc's ParseTag understands becomes a filter on that tag (a later
one replacing an earlier one for the same tag); every other key is silently ignored. ParseTag
accepts 8 hex digits, `gggg,eeee` or `gggg-eeee`, DCMTK's `%x,%x` (so `10,20`, `0x10,0x20`, `10010,20`
and ` 10,20` all name PatientID) and dictionary keywords, case-sensitively.

A search by a caller who is not an admin may only use keys the gate reads the same way for sure:
the four parameters, the two exact hex forms, and the keywords of QIDO_KEYWORDS. Anything else,
or a tag named twice in any spelling, is refused: the gate cannot know which reading the plugin
will act on. The values of the two keys that say whose data a search is about (StudyInstanceUID,
PatientID) must be exact: UIDs (a comma-separated list) or one PatientID with none of the
characters the plugin treats specially (`\\` is dropped, `,` and `%2c` split lists, `*` and `?`
are wildcards, `%` would be taken literally).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from plugin.policies.types import RouteInfo

PARAMETERS = frozenset({"limit", "offset", "fuzzymatching", "includefield"})

STUDY_INSTANCE_UID = 0x0020000D
PATIENT_ID = 0x00100020
# The tags a search is located by (services/access.py), under the names the gate uses for them.
LOCATING = {STUDY_INSTANCE_UID: "StudyInstanceUID", PATIENT_ID: "PatientID"}

# DICOM keywords (DCMTK's dictionary spelling, exact case) of the attributes QIDO-RS searches and
# returns (PS3.18 tables 6.7.1-1 and -2) and that viewers filter on. tests/unit/test_qido.py checks
# them against pydicom's dictionary; tests/integration/test_qido.py against the DICOMweb plugin.
QIDO_KEYWORDS: dict[str, int] = {
    "SpecificCharacterSet": 0x00080005, "ImageType": 0x00080008, "SOPClassUID": 0x00080016,
    "SOPInstanceUID": 0x00080018, "StudyDate": 0x00080020, "SeriesDate": 0x00080021,
    "AcquisitionDate": 0x00080022, "ContentDate": 0x00080023, "StudyTime": 0x00080030,
    "SeriesTime": 0x00080031, "ContentTime": 0x00080033, "AccessionNumber": 0x00080050,
    "InstanceAvailability": 0x00080056, "Modality": 0x00080060, "ModalitiesInStudy": 0x00080061,
    "Manufacturer": 0x00080070, "InstitutionName": 0x00080080, "ReferringPhysicianName": 0x00080090,
    "TimezoneOffsetFromUTC": 0x00080201, "StationName": 0x00081010, "StudyDescription": 0x00081030,
    "SeriesDescription": 0x0008103E, "RetrieveURL": 0x00081190, "PatientName": 0x00100010,
    "PatientID": 0x00100020, "IssuerOfPatientID": 0x00100021, "PatientBirthDate": 0x00100030,
    "PatientSex": 0x00100040, "PatientAge": 0x00101010, "BodyPartExamined": 0x00180015,
    "ProtocolName": 0x00181030, "StudyInstanceUID": 0x0020000D, "SeriesInstanceUID": 0x0020000E,
    "StudyID": 0x00200010, "SeriesNumber": 0x00200011, "InstanceNumber": 0x00200013,
    "Laterality": 0x00200060, "NumberOfStudyRelatedSeries": 0x00201206,
    "NumberOfStudyRelatedInstances": 0x00201208, "NumberOfSeriesRelatedInstances": 0x00201209,
    "NumberOfFrames": 0x00280008, "Rows": 0x00280010, "Columns": 0x00280011, "BitsAllocated": 0x00280100,
    "PerformedProcedureStepStartDate": 0x00400244, "PerformedProcedureStepStartTime": 0x00400245,
}

_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_HEX9 = re.compile(r"([0-9A-Fa-f]{4})[,-]([0-9A-Fa-f]{4})")
_UID_LIST = re.compile(r"[0-9][0-9.]*(,[0-9][0-9.]*)*")
# Characters the plugin (or the HTTP layer) reads in a value differently from their face value.
_NOT_EXACT = re.compile(r"[\\,*?%\x00-\x1f\x7f]")


@dataclass(frozen=True)
class QidoQuery:
    """What a search says about whose data it wants, or why it cannot be read safely."""

    locating: tuple[tuple[str, str], ...] = ()  # (StudyInstanceUID | PatientID, raw value)
    problem: str | None = None


def tag_of(key: str) -> int | None:
    """The tag a query key names, when the gate reads it exactly as the plugin does; else None."""
    tag = parse_hex_tag(key)
    return tag if tag is not None else QIDO_KEYWORDS.get(key)


def parse_hex_tag(key: str) -> int | None:
    """Orthanc's DicomTag::ParseHexadecimal: `ggggeeee`, `gggg,eeee` or `gggg-eeee`."""
    if _HEX8.fullmatch(key):
        return int(key, 16)
    match = _HEX9.fullmatch(key)
    return int(match.group(1) + match.group(2), 16) if match else None


def read_query(query: dict[str, str]) -> QidoQuery:
    """Read a search's query keys (as received: not decoded) the way the DICOMweb plugin will."""
    seen: set[int] = set()
    locating: list[tuple[str, str]] = []
    for key, value in query.items():
        if key == "" or key in PARAMETERS:
            continue  # an empty key is skipped by the plugin; parameters filter nothing
        tag = tag_of(key)
        if tag is None:
            return QidoQuery(problem=f"search key {key[:40]!r} is not one the gate can read as the DICOMweb "
                                     "plugin does (use a DICOM keyword or gggg,eeee)")
        if tag in seen:
            return QidoQuery(problem=f"search names the tag {tag:08X} twice")
        seen.add(tag)
        name = LOCATING.get(tag)
        if name is not None:
            problem = _inexact(name, value)
            if problem:
                return QidoQuery(problem=problem)
            locating.append((name, value))
    return QidoQuery(tuple(locating))


def _inexact(name: str, value: str) -> str | None:
    if value == "":
        return None  # universal matching: narrows nothing, and locates nothing either
    if name == "StudyInstanceUID":
        return None if _UID_LIST.fullmatch(value) else "StudyInstanceUID must be UIDs separated by commas"
    if _NOT_EXACT.search(value) or value != value.strip():
        return "PatientID must be one exact value (no wildcard, list, escape or surrounding space)"
    return None


def search_values(value: str) -> list[str]:
    """The exact values of a locating key that read_query accepted (a comma-separated list)."""
    return [v for v in value.split(",") if v]


# The DICOMweb plugin searches through Orthanc's /tools/find on the caller's behalf, with the
# caller's HTTP headers and past the plugins' own routes, from version 1.9 on (its NEWS); before,
# it asks the core directly and a route of ours never sees the search.
FORWARDING_VERSION = (1, 9)


def trimmed_search(route: RouteInfo) -> RouteInfo:
    """A server-wide search whose answer will be trimmed to the caller's grants: let through for
    everyone signed in, whatever its keys say (it is the answer that is cut, not the question that
    is trusted), and audited where it is answered."""
    return replace(route, trimmed=True, query_problem=None)


def forwards_searches(version: str) -> bool:
    """Whether a DICOMweb plugin of this version sends its searches through our /tools/find."""
    if version == "mainline":
        return True
    try:
        numbers = tuple(int(part) for part in version.split("."))
    except ValueError:
        return False  # an unknown version: searches stay refused, the safe side
    return numbers[:2] >= FORWARDING_VERSION

"""A DICOMweb search (QIDO-RS) read and answered as the DICOMweb plugin 1.7 does it (Debian 12).

DICOMweb 1.7 asks Orthanc's core directly (past every plugin's routes) for what a search finds,
so its answers cannot be trimmed from outside: where that plugin is installed the Gate answers the
six search routes itself (services/dicomweb_search.py), and an admin must get byte for byte what
the plugin gave. These are the plugin's rules (Plugin/QidoRs.cpp and Configuration.cpp at 1.7),
as pure functions: the query keys, the /tools/find request, the derived attributes, which
attributes an answer holds, the Retrieve URL and the answer's format.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plugin.policies.qido import STUDY_INSTANCE_UID, parse_hex_tag

STUDY, SERIES, INSTANCE = "Study", "Series", "Instance"

SERIES_INSTANCE_UID = 0x0020000E
SOP_INSTANCE_UID = 0x00080018
MODALITIES_IN_STUDY = 0x00080061
RETRIEVE_URL = 0x00081190
NUMBER_OF_STUDY_RELATED_SERIES = 0x00201206
NUMBER_OF_STUDY_RELATED_INSTANCES = 0x00201208
NUMBER_OF_SERIES_RELATED_INSTANCES = 0x00201209

# The attributes each level's answer holds (PS3.18 tables 6.7.1-2, -2a, -2b, as the plugin lists
# them; Specific Character Set, Modalities in Study, the counts and the Retrieve URL are added
# apart, as derived or special attributes).
LEVEL_ATTRIBUTES: dict[str, frozenset[int]] = {
    STUDY: frozenset({0x00080020, 0x00080030, 0x00080050, 0x00080056, 0x00080090, 0x00080201, 0x00100010,
                      0x00100020, 0x00100030, 0x00100040, 0x0020000D, 0x00200010}),
    SERIES: frozenset({0x00080060, 0x00080201, 0x0008103E, 0x0020000E, 0x00200011, 0x00400244, 0x00400245,
                       0x00400275}),
    INSTANCE: frozenset({0x00080016, 0x00080018, 0x00080056, 0x00080201, 0x00081190, 0x00200013, 0x00280010,
                         0x00280011, 0x00280100, 0x00280008}),
}

UINT_MAX = 0xFFFFFFFF
XML_TYPES = frozenset({"application/dicom+xml", "application/xml", "text/xml"})


class DicomWebRefused(Exception):
    """The plugin would have answered this request with an error status and no body."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class Search:
    """One search as the plugin reads it: paging, extra attributes and filters by tag."""

    level: str
    limit: int = 0
    offset: int = 0
    include_fields: list[int] = field(default_factory=list)
    filters: dict[int, str] = field(default_factory=dict)
    filtered_study: bool = False  # the query itself (not the path) names StudyInstanceUID
    filtered_series: bool = False

    def add_filter(self, tag: int, value: str, from_path: bool) -> None:
        self.filters[tag] = value
        if not from_path:
            self.filtered_study |= tag == STUDY_INSTANCE_UID
            self.filtered_series |= tag == SERIES_INSTANCE_UID


def read_search(level: str, query: Mapping[str, str], path_uids: tuple[str, ...],
                tag_of: Callable[[str], int | None]) -> Search:
    """The search a request makes: its query keys as received (not percent-decoded) and the UIDs
    its path names. `tag_of` is the plugin's key reading (Orthanc's dictionary lookup)."""
    search = Search(level)
    for key, value in query.items():
        if key == "limit":
            search.limit = unsigned(value)
        elif key == "offset":
            search.offset = unsigned(value)
        elif key == "fuzzymatching":
            if value not in ("true", "false"):
                raise DicomWebRefused(400)
        elif key == "includefield":
            if value != "all":  # "all" is read, and then adds nothing: 1.7 never looks at it again
                search.include_fields.extend(t for t in map(tag_of, value.split(",")) if t is not None)
        else:
            tag = tag_of(key)
            if tag is not None:
                # Lists of values: the plugin drops backslashes, then turns commas into them.
                value = value.replace("\\", "").replace(",", "\\").replace("%2c", "\\").replace("%2C", "\\")
                search.add_filter(tag, value, from_path=False)
    if path_uids:
        search.add_filter(STUDY_INSTANCE_UID, path_uids[0], from_path=True)
    if len(path_uids) > 1:
        search.add_filter(SERIES_INSTANCE_UID, path_uids[1], from_path=True)
    return search


_UNSIGNED = re.compile(r"[+-]?[0-9]+")


def unsigned(text: str) -> int:
    """boost::lexical_cast<unsigned int>: digits with one optional sign, a minus wrapping around."""
    if not _UNSIGNED.fullmatch(text):
        raise DicomWebRefused(400)
    number = int(text.lstrip("+-"))
    if number > UINT_MAX:
        raise DicomWebRefused(400)
    return (-number) & UINT_MAX if text.startswith("-") else number


def find_request(search: Search, case_sensitive: bool | None) -> dict[str, Any]:
    """The body of the /tools/find call the plugin makes for this search."""
    body: dict[str, Any] = {"Level": search.level}
    if case_sensitive is not None:
        body["CaseSensitive"] = case_sensitive
    body.update({"Expand": False, "Query": {format_tag(tag): value for tag, value in sorted(search.filters.items())},
                 "Limit": search.limit, "Since": search.offset})
    return body


def study_derived(series: Any) -> tuple[dict[int, str], str]:
    """A study's Modalities in Study and counts, from /studies/{id}/series?expand, and the instance
    whose tags fill in the rest: the first one of the last series listed (as the plugin picks)."""
    if not isinstance(series, list):
        return {MODALITIES_IN_STUDY: "", NUMBER_OF_STUDY_RELATED_SERIES: "0",
                NUMBER_OF_STUDY_RELATED_INSTANCES: "0"}, ""
    modalities: set[str] = set()
    instances = 0
    some_instance = ""
    for item in series:
        if not isinstance(item, dict):
            continue
        tags = item.get("MainDicomTags")
        if isinstance(tags, dict) and isinstance(tags.get("Modality"), str):
            modalities.add(tags["Modality"])
        children = item.get("Instances")
        if isinstance(children, list):
            if children and isinstance(children[0], str):
                some_instance = children[0]
            instances += len(children)
    # Sorted as std::set<std::string> sorts (UTF-8 byte order is code point order).
    return {NUMBER_OF_STUDY_RELATED_SERIES: str(len(series)), NUMBER_OF_STUDY_RELATED_INSTANCES: str(instances),
            MODALITIES_IN_STUDY: "\\".join(sorted(modalities))}, some_instance


def series_derived(series: Any) -> tuple[dict[int, str], str]:
    """A series' Number of Series Related Instances from /series/{id}, and its first instance."""
    children = series.get("Instances") if isinstance(series, dict) else None
    if not isinstance(children, list):
        return {NUMBER_OF_SERIES_RELATED_INSTANCES: "0"}, ""
    first = children[0] if children and isinstance(children[0], str) else ""
    return {NUMBER_OF_SERIES_RELATED_INSTANCES: str(len(children))}, first


def string_tags(tags: Any) -> dict[int, str]:
    """The string attributes of /instances/{id}/tags (Orthanc's full format): what the plugin can
    copy into an answer (sequences, binary, null and too-long values it cannot)."""
    found: dict[int, str] = {}
    if not isinstance(tags, dict):
        return found
    for key, item in tags.items():
        if isinstance(item, dict) and item.get("Type") == "String" and isinstance(item.get("Value"), str):
            tag = parse_hex_tag(key)
            if tag is not None:
                found[tag] = item["Value"]
    return found


def answer_attributes(search: Search, derived: Mapping[int, str], source: Mapping[int, str],
                      base_url: str) -> dict[int, str]:
    """What one matched resource's answer holds: the derived attributes, then each wanted
    attribute the instance has, then the Retrieve URL."""
    fields = set(search.include_fields) | LEVEL_ATTRIBUTES[search.level] | set(search.filters)
    if not search.filtered_study and search.level in (INSTANCE, SERIES):
        fields |= LEVEL_ATTRIBUTES[STUDY]
    if not search.filtered_series and search.level == INSTANCE:
        fields |= LEVEL_ATTRIBUTES[SERIES]
    result = dict(derived)
    for tag in sorted(fields):
        if tag in source:
            result[tag] = source[tag]
    url = base_url + "studies/" + source.get(STUDY_INSTANCE_UID, "")
    if search.level in (SERIES, INSTANCE):
        url += "/series/" + source.get(SERIES_INSTANCE_UID, "")
    if search.level == INSTANCE:
        url += "/instances/" + source.get(SOP_INSTANCE_UID, "")
    result[RETRIEVE_URL] = url
    return result


def base_url(headers: Mapping[str, str], host: str, ssl: bool, root: str) -> str:
    """The plugin's base of Retrieve URLs: its configured Host, else the first proxy's Forwarded
    host (and proto), else the request's Host header. `headers` have lower-case names."""
    https = ssl
    forwarded = headers.get("forwarded")
    if not host and forwarded is not None:
        for token in forwarded.split(",")[0].split(";"):
            parts = token.split("=")
            if len(parts) == 2:
                key, value = parts[0].strip(" ").lower(), parts[1].strip(" ")
                if key == "host":
                    host = value
                elif key == "proto" and value in ("http", "https"):
                    https = value == "https"
    if not host:
        host = headers.get("host", "localhost:8042")
    return ("https://" if https else "http://") + host + root


def wants_xml(headers: Mapping[str, str]) -> bool:
    """Only these exact Accept values ask for XML; anything else gets DICOM JSON."""
    accept = headers.get("accept")
    return accept is not None and accept.lower() in XML_TYPES


def format_tag(tag: int) -> str:
    """Orthanc's `gggg,eeee` (lower-case hex), as DicomTag::Format writes it."""
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


_SCANF_HEX = re.compile(r"[ \t\n\v\f\r]*([+-]?)(?:0[xX](?=[0-9a-fA-F]))?([0-9a-fA-F]+)")


def dcmtk_tag_pair(key: str) -> int | None:
    """DCMTK's DcmTag::findTagFromName first tries sscanf(name, "%x,%x"): two hex numbers, each
    after optional spaces, a sign and 0x, with the comma right after the first; whatever follows
    the second is ignored, and each number is cut to 16 bits."""
    first = _SCANF_HEX.match(key)
    if first is None or key[first.end():first.end() + 1] != ",":
        return None
    second = _SCANF_HEX.match(key, first.end() + 1)
    if second is None:
        return None
    return (_scanf_value(first) << 16) | _scanf_value(second)


def _scanf_value(match: re.Match[str]) -> int:
    number = int(match.group(2), 16)
    number = min(number, 0xFFFFFFFFFFFFFFFF)  # strtoul saturates
    if match.group(1) == "-":
        number = -number
    return number & 0xFFFF

"""DICOMweb searches (QIDO-RS), answered by the Gate where the DICOMweb plugin (1.7, Debian 12)
would search past every plugin's routes.

Admins get what the plugin gave them, byte for byte (policies/dicomweb_search.py has its rules,
services/dicomweb_format.py its writer); everyone else gets the same answer over the studies
they may see: the one /tools/find the plugin would make goes through SearchService.find, which
trims it to the caller's grants before anything is read from a study.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydicom.datadict import tag_for_keyword

from plugin.config import DicomWebSettings
from plugin.policies import dicomweb_search as qido
from plugin.policies.dicomweb_search import DicomWebRefused, Search
from plugin.policies.qido import PATIENT_ID, parse_hex_tag
from plugin.policies.types import Principal
from plugin.services.core import Core, CoreError
from plugin.services.dicomweb_format import dicom_model, json_answer, native_xml, styled_json
from plugin.services.search import SearchService

JSON_TYPE = "application/dicom+json"
XML_TYPE = "application/dicom+xml"
KEY_CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class DicomWebAnswer:
    """A JSON document, or XML parts of a multipart/related answer; or a bare error status."""

    status: int = 200
    body: bytes = b""
    content_type: str = JSON_TYPE
    parts: tuple[bytes, ...] | None = None
    count: int = 0  # resources answered
    patient_ids: frozenset[str] = frozenset()  # whose they are


class DicomWebSearchService:
    def __init__(self, core: Core, search: SearchService, settings: DicomWebSettings) -> None:
        self._core = core
        self._search = search
        self._settings = settings
        self._tags: dict[str, int | None] = {}
        self._lock = threading.Lock()

    # -- QIDO-RS -------------------------------------------------------------------------------

    def search(self, principal: Principal, level: str, query: Mapping[str, str], headers: Mapping[str, str],
               path_uids: tuple[str, ...], now: float) -> DicomWebAnswer:
        base = self._base_url(headers)
        try:
            search = qido.read_search(level, query, path_uids, self.tag_of)
            found = self._find(principal, qido.find_request(search, self._settings.qido_case_sensitive), now)
            matched = [self._attributes(search, resource, base) for resource in found]
            matched = [attributes for attributes in matched if attributes is not None]
            models = [self._dicom_model({qido.format_tag(tag): value for tag, value in sorted(attributes.items())})
                      for attributes in matched]
        except DicomWebRefused as refused:
            return DicomWebAnswer(refused.status)
        answer = self._answer(models, qido.wants_xml(headers))
        patients = frozenset(a[PATIENT_ID] for a in matched if PATIENT_ID in a)
        return replace(answer, count=len(models), patient_ids=patients)

    def _find(self, principal: Principal, body: dict[str, Any], now: float) -> list[Any]:
        try:
            if principal.is_admin:
                found = self._core.post("/tools/find", json.dumps(body))
            else:
                found = self._search.find(principal, body, now, in_core_order=True)
        except CoreError as exc:
            # The plugin passes the core's error on, but for an unknown resource (its C++ wrapper
            # answers false there, which it turns into an internal error).
            raise DicomWebRefused(500 if exc.status == 404 else exc.status) from None
        if not isinstance(found, list):
            raise DicomWebRefused(500)
        return found

    def _attributes(self, search: Search, resource: Any, base: str) -> dict[int, str] | None:
        """One matched resource's attributes, or None when it has no instance to read (as the plugin)."""
        if not isinstance(resource, str):
            raise DicomWebRefused(500)
        if search.level == qido.STUDY:
            derived, some_instance = qido.study_derived(self._get(f"/studies/{resource}/series?expand"))
        elif search.level == qido.SERIES:
            derived, some_instance = qido.series_derived(self._get(f"/series/{resource}"))
        else:
            derived, some_instance = {}, resource
        tags = self._get(f"/instances/{some_instance}/tags") if some_instance else None
        if tags is None:
            return None
        return qido.answer_attributes(search, derived, qido.string_tags(tags), base)

    def _get(self, path: str) -> Any:
        try:
            return self._core.get(path)
        except CoreError:
            return None

    def tag_of(self, key: str) -> int | None:
        """The tag a query key names for the plugin (Orthanc's dictionary lookup), or None."""
        with self._lock:
            if key in self._tags:
                return self._tags[key]
        tag = self._lookup(key)
        with self._lock:
            if len(self._tags) >= KEY_CACHE_ENTRIES:
                self._tags.clear()
            self._tags[key] = tag
        return tag

    def _lookup(self, key: str) -> int | None:
        # FromDcmtkBridge::ParseTag (hexadecimal, then DCMTK's "%x,%x", then a keyword), and the
        # tag must then be in Orthanc's dictionary: a private tag under DefaultPrivateCreator, as
        # the core's dictionary lookup does.
        tag = parse_hex_tag(key)
        if tag is None:
            tag = qido.dcmtk_tag_pair(key)
        if tag is not None:
            return tag if self._dictionary_name(tag) is not None else None
        tag = tag_for_keyword(key)
        if tag is None:
            tag = dict(self._settings.dictionary_keywords).get(key)
        return tag if tag is not None and self._dictionary_name(tag) == key else None

    def _dictionary_name(self, tag: int) -> str | None:
        private = bool((tag >> 16) & 1)
        return self._core.tag_name(tag, self._settings.default_private_creator if private else "")

    # -- shared --------------------------------------------------------------------------------

    def _dicom_model(self, tags: dict[str, Any]) -> dict[str, Any]:
        try:
            return dicom_model(self._core.create_dicom(tags))
        except (CoreError, ValueError):  # Orthanc could not make it, or made something else
            raise DicomWebRefused(500) from None

    def _answer(self, models: list[dict[str, Any]], xml: bool) -> DicomWebAnswer:
        if xml:
            return DicomWebAnswer(content_type=XML_TYPE,
                                  parts=tuple(native_xml(model, self._core.tag_name) for model in models))
        return DicomWebAnswer(body=json_answer([styled_json(model) for model in models]))

    def _base_url(self, headers: Mapping[str, str]) -> str:
        settings = self._settings
        return qido.base_url(headers, settings.host, settings.ssl, settings.root)

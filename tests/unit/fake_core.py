"""A stand-in for Orthanc's core REST API (services/core.py's Core): a small catalogue of patients,
studies, series and instances answered in Orthanc's JSON shapes, counting every call."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

from plugin.services.core import CoreError, orthanc_id
from plugin.services.study_contents import ENCAPSULATED_PDF

__all__ = ["FakeCore", "StudyIds", "orthanc_id"]

PLURAL = {"Patient": "patients", "Study": "studies", "Series": "series", "Instance": "instances"}
# Orthanc's formats of an expanded resource; the fake answers the same JSON for each.
FORMATS = ("", "?full", "?short")


@dataclass
class StudyIds:
    """The Orthanc ids of one study and of what is above and below it."""

    patient: str
    study: str
    series: str
    instance: str
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str


@dataclass
class FakeCore:
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # "/studies/{id}" -> its JSON
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    finds: list[dict[str, Any]] = field(default_factory=list)  # bodies posted to /tools/find
    fail: set[str] = field(default_factory=set)  # paths answered with an error (a core that refuses)
    streams_many_archives: bool = False  # Orthanc 1.12.2+: GET /tools/create-archive
    sop_classes: dict[str, str] = field(default_factory=dict)  # instance -> its SopClassUid metadata
    documents: dict[str, bytes] = field(default_factory=dict)  # instance -> its EncapsulatedDocument

    # -- building the catalogue ----------------------------------------------------------------

    def add_study(self, patient_id: str, study_uid: str, modality: str = "CT",
                  accession: str = "") -> StudyIds:
        """One study of one series of one instance, under the patient (created when new)."""
        patient = orthanc_id(patient_id)
        study = orthanc_id(patient_id, study_uid)
        series_uid, sop_uid = f"{study_uid}.1", f"{study_uid}.1.1"
        series = orthanc_id(patient_id, study_uid, series_uid)
        instance = orthanc_id(patient_id, study_uid, series_uid, sop_uid)
        patient_tags = {"PatientID": patient_id, "PatientName": f"NAME^{patient_id}"}
        record = self.resources.setdefault(f"/patients/{patient}", {
            "ID": patient, "Type": "Patient", "MainDicomTags": patient_tags, "Studies": []})
        record["Studies"].append(study)
        self.resources[f"/studies/{study}"] = {
            "ID": study, "Type": "Study", "ParentPatient": patient, "Series": [series],
            "MainDicomTags": {"StudyInstanceUID": study_uid, "AccessionNumber": accession, "StudyDate": "20240101"},
            "PatientMainDicomTags": patient_tags}
        self.resources[f"/series/{series}"] = {
            "ID": series, "Type": "Series", "ParentStudy": study, "Instances": [instance],
            "MainDicomTags": {"SeriesInstanceUID": series_uid, "Modality": modality}}
        self.resources[f"/instances/{instance}"] = {
            "ID": instance, "Type": "Instance", "ParentSeries": series,
            "MainDicomTags": {"SOPInstanceUID": sop_uid}}
        return StudyIds(patient, study, series, instance, patient_id, study_uid, series_uid, sop_uid)

    def add_report(self, ids: StudyIds, content: bytes = b"%PDF-1.4 a report\n%%EOF", modality: str = "DOC") -> str:
        """A series of one Encapsulated PDF instance in the study (padded to an even length, as DICOM
        stores it); its Orthanc id."""
        series_uid, sop_uid = f"{ids.study_uid}.9", f"{ids.study_uid}.9.1"
        series = orthanc_id(ids.patient_id, ids.study_uid, series_uid)
        instance = orthanc_id(ids.patient_id, ids.study_uid, series_uid, sop_uid)
        # First, so the report's series is seen before the images (it must not become the preview).
        self.resources[f"/studies/{ids.study}"]["Series"].insert(0, series)
        self.resources[f"/series/{series}"] = {
            "ID": series, "Type": "Series", "ParentStudy": ids.study, "Instances": [instance],
            "MainDicomTags": {"SeriesInstanceUID": series_uid, "Modality": modality}}
        self.resources[f"/instances/{instance}"] = {
            "ID": instance, "Type": "Instance", "ParentSeries": series, "MainDicomTags": {"SOPInstanceUID": sop_uid}}
        self.sop_classes[instance] = ENCAPSULATED_PDF
        self.documents[instance] = content + b"\x00" * (len(content) % 2)
        return instance

    def remove_study(self, ids: StudyIds) -> None:
        """Delete a study (its series and instances too), and its patient when it was their last."""
        study = self.resources.pop(f"/studies/{ids.study}")
        for series in study["Series"]:
            for instance in self.resources.pop(f"/series/{series}")["Instances"]:
                self.resources.pop(f"/instances/{instance}")
        patient = self.resources[f"/patients/{ids.patient}"]
        patient["Studies"].remove(ids.study)
        if not patient["Studies"]:
            del self.resources[f"/patients/{ids.patient}"]

    def count(self, method: str, path: str) -> int:
        return sum(1 for call in self.calls if call == (method, path))

    def gets(self, prefix: str = "/") -> list[str]:
        """Paths of the GETs asked so far that start with `prefix`, in order."""
        return [path for method, path in self.calls if method == "GET" and path.startswith(prefix)]

    # -- the Core protocol ---------------------------------------------------------------------

    def get(self, path: str) -> Any:
        self.calls.append(("GET", path))
        if path in self.fail:
            raise CoreError(500, "refused")
        if path.startswith("/studies/") and path.endswith("/series"):
            study = self.resources.get(path.removesuffix("/series"))
            if study is None:
                raise CoreError(404, "Unknown resource")
            return json.loads(json.dumps([self.resources[f"/series/{s}"] for s in study["Series"]]))
        if path.endswith("/statistics"):
            return self._statistics(path.removesuffix("/statistics"))
        base, _, options = path.partition("?")
        found = self.resources.get(base)
        if found is None or (options and f"?{options}" not in FORMATS):
            raise CoreError(404, "Unknown resource")
        return json.loads(json.dumps(found))

    def post(self, path: str, body: bytes | str) -> Any:
        text = body.decode() if isinstance(body, bytes) else body
        self.calls.append(("POST", path))
        if path in self.fail:
            raise CoreError(400, "refused")
        if path == "/tools/lookup":
            return self._lookup(text.strip())
        if path == "/tools/find":
            request = json.loads(text)
            self.finds.append(request)
            return self._find(request)
        raise CoreError(404, "Unknown resource")

    def get_raw(self, path: str) -> bytes:
        if path.endswith("/metadata/SopClassUid") or path.endswith("/content/0042-0011"):
            self.calls.append(("GET", path))
            table = self.sop_classes if path.endswith("SopClassUid") else self.documents
            instance = path.split("/")[2]
            if instance not in table:
                raise CoreError(404, "Unknown resource")
            value = table[instance]
            return value.encode() if isinstance(value, str) else value
        return json.dumps(self.get(path)).encode()

    def post_raw(self, path: str, body: bytes | str) -> bytes:
        return json.dumps(self.post(path, body)).encode()

    def preview_image(self, instance_oid: str, size: int) -> tuple[bytes, str]:
        self.get(f"/instances/{instance_oid}")  # a CoreError for an instance that is not there
        self.calls.append(("GET", f"/instances/{instance_oid}/rendered"))
        return f"jpeg of {instance_oid} at {size}".encode(), "image/jpeg"

    def archives_many(self) -> bool:
        return self.streams_many_archives

    # -- answers -------------------------------------------------------------------------------

    def _statistics(self, path: str) -> dict[str, Any]:
        """GET /patients|studies/{id}/statistics: counts of what is below (sizes are made up)."""
        resource = self.resources.get(path)
        if resource is None or resource["Type"] not in ("Patient", "Study"):
            raise CoreError(404, "Unknown resource")
        studies = resource["Studies"] if resource["Type"] == "Patient" else [resource["ID"]]
        series = [s for study in studies for s in self.resources[f"/studies/{study}"]["Series"]]
        instances = sum(len(self.resources[f"/series/{s}"]["Instances"]) for s in series)
        counts = {"CountSeries": len(series), "CountInstances": instances, "DiskSize": str(1000 * instances),
                  "DiskSizeMB": 0, "UncompressedSize": str(1000 * instances), "UncompressedSizeMB": 0}
        return counts | ({"CountStudies": len(studies)} if resource["Type"] == "Patient" else {})

    def _lookup(self, value: str) -> list[dict[str, str]]:
        """Orthanc's /tools/lookup: resources whose PatientID, StudyInstanceUID, SeriesInstanceUID or
        SOPInstanceUID is `value` (only those: not the AccessionNumber)."""
        keys = {"Patient": "PatientID", "Study": "StudyInstanceUID", "Series": "SeriesInstanceUID",
                "Instance": "SOPInstanceUID"}
        return [{"ID": r["ID"], "Type": r["Type"], "Path": f"/{PLURAL[r['Type']]}/{r['ID']}"}
                for r in self.resources.values() if r["MainDicomTags"].get(keys[r["Type"]]) == value]

    def _find(self, request: dict[str, Any]) -> list[Any]:
        """Enough of /tools/find: exact values, `\\` lists and * ? wildcards; matched without regard to
        case unless `"CaseSensitive": true` (as Orthanc 1.10.1 matches PatientID); then Since and Limit."""
        if "ID" in (request.get("ResponseContent") or ()):  # as 1.12.7: "ID" is no ResponseContent value
            raise CoreError(400, 'Unrecognized value for "ResponseContent": ID')
        level = request["Level"]
        case_sensitive = request.get("CaseSensitive") is True
        found = []
        for resource in self.resources.values():
            if resource["Type"] != level:
                continue
            tags = self._tags_with_parents(resource)
            if level == "Study":
                tags["ModalitiesInStudy"] = "\\".join(
                    self.resources[f"/series/{s}"]["MainDicomTags"]["Modality"] for s in resource["Series"])
            if all(_matches(tags.get(key, ""), pattern, key, case_sensitive)
                   for key, pattern in request.get("Query", {}).items()):
                if isinstance(request.get("ResponseContent"), list):  # 1.12.5: "ID" and the parts asked for
                    found.append({k: v for k, v in resource.items() if k == "ID" or k in request["ResponseContent"]})
                else:
                    found.append(resource if request.get("Expand") else resource["ID"])
        since, limit = request.get("Since", 0), request.get("Limit", 0)  # Limit 0: no limit, as in Orthanc
        return json.loads(json.dumps(found[since:since + limit] if limit else found[since:]))

    def _tags_with_parents(self, resource: dict[str, Any]) -> dict[str, str]:
        """A resource's tags and those of the study and patient above it, which Orthanc also matches."""
        tags: dict[str, str] = {}
        while resource is not None:
            tags = {**resource.get("PatientMainDicomTags", {}), **resource["MainDicomTags"], **tags}
            parent = resource.get("ParentSeries") or resource.get("ParentStudy")
            kind = "series" if "ParentSeries" in resource else "studies"
            resource = self.resources.get(f"/{kind}/{parent}") if parent else None
        return tags


def _matches(value: str, pattern: str, key: str, case_sensitive: bool = True) -> bool:
    if not pattern:
        return True
    if not case_sensitive:
        value, pattern = value.lower(), pattern.lower()
    values = value.split("\\") if key == "ModalitiesInStudy" else [value]
    return any(fnmatch.fnmatchcase(v, item) for item in pattern.split("\\") for v in values)

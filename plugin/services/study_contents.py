"""What a study holds, as the pages that show it need it: its modalities, an image to preview per
series of images, and its PDF report (an encapsulated PDF series). Shared by the doctor dashboard and
the patient's share page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plugin.services.core import Core, CoreError

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
ENCAPSULATED_DOCUMENT = "0042-0011"
# Series that hold no image Orthanc can render as a preview.
NOT_IMAGES = frozenset({"SR", "KO", "PR", "DOC", "RWV", "SEG", "REG"})


@dataclass(frozen=True)
class StudyContents:
    modalities: tuple[str, ...]
    previews: tuple[tuple[str, str], ...]  # (series id, its middle instance) for each series of images
    report_instance: str | None

    @property
    def preview_instance(self) -> str | None:
        return self.previews[0][1] if self.previews else None

    @property
    def image_series(self) -> str | None:
        return self.previews[0][0] if self.previews else None


def study_contents(core: Core, study_oid: str) -> StudyContents:
    """A series is judged by its first instance's SOP class (Orthanc keeps it as the instance's metadata)."""
    try:
        series_list = core.get(f"/studies/{study_oid}/series")
    except CoreError:
        return StudyContents((), (), None)
    modalities: set[str] = set()
    previews: list[tuple[str, str]] = []
    report = None
    for series in series_list if isinstance(series_list, list) else ():
        modality = _tag(series, "Modality").upper()
        if modality:
            modalities.add(modality)
        instances = [i for i in series.get("Instances", ()) if isinstance(i, str)]
        if not instances:
            continue
        if _sop_class(core, instances[0]) == ENCAPSULATED_PDF:
            report = report or instances[0]
        elif modality not in NOT_IMAGES and isinstance(series.get("ID"), str):
            previews.append((series["ID"], instances[len(instances) // 2]))
    return StudyContents(tuple(sorted(modalities)), tuple(previews), report)


def report_pdf(core: Core, instance_oid: str) -> bytes | None:
    """The PDF an encapsulated-PDF instance holds; None when Orthanc cannot give it."""
    try:
        content = core.get_raw(f"/instances/{instance_oid}/content/{ENCAPSULATED_DOCUMENT}")
    except CoreError:
        return None
    # A PDF of odd length is padded with one NUL to the even length DICOM requires.
    return content[:-1] if content.endswith(b"\x00") else content


def _sop_class(core: Core, instance_oid: str) -> str:
    try:
        return core.get_raw(f"/instances/{instance_oid}/metadata/SopClassUid").decode("ascii", "replace")
    except CoreError:
        return ""


def _tag(series: Any, name: str) -> str:
    tags = series.get("MainDicomTags") if isinstance(series, dict) else None
    value = tags.get(name, "") if isinstance(tags, dict) else ""
    return value if isinstance(value, str) else ""

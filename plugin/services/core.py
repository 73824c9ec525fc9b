"""What the services need from Orthanc's own REST API (implemented by plugin/orthanc_api.py).

Calls made this way reach Orthanc's core directly and do not pass through the gate.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol


class CoreError(Exception):
    """Orthanc's core refused a call; `status` is the HTTP status it would have answered."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Core(Protocol):
    def get(self, path: str) -> Any:
        """GET `path` (a query string allowed) and parse the JSON answer; raises CoreError."""

    def post(self, path: str, body: bytes | str) -> Any:
        """POST `body` to `path` and parse the JSON answer; raises CoreError."""

    def get_raw(self, path: str) -> bytes: ...

    def delete(self, path: str) -> None:
        """DELETE `path` (Orthanc's SDK gives no answer body); raises CoreError."""

    def post_raw(self, path: str, body: bytes | str) -> bytes: ...

    def create_dicom(self, tags: dict[str, Any]) -> bytes:
        """Orthanc's CreateDicom of tags named `gggg,eeee` (no pixel data); raises CoreError."""

    def tag_name(self, tag: int, private_creator: str = "") -> str | None:
        """The keyword of a tag in Orthanc's dictionary (a private one: under that creator), None if none."""

    def preview_image(self, instance_oid: str, size: int) -> tuple[bytes, str]:
        """An instance rendered by Orthanc to fit `size` pixels, as (bytes, content type): a JPEG
        where Orthanc's image codecs can make one, else the PNG Orthanc rendered; raises CoreError."""

    def archives_many(self) -> bool:
        """Whether the core streams a ZIP of several resources to a GET (/tools/create-archive,
        Orthanc 1.12.2 and later)."""


def orthanc_id(*dicom_ids: str) -> str:
    """The id Orthanc gives a resource: SHA-1 of its DICOM identifiers joined by "|" (PatientID for a
    patient; PatientID, StudyInstanceUID for a study), in five groups of eight hex digits."""
    digest = hashlib.sha1("|".join(dicom_ids).encode("utf-8"), usedforsecurity=False).hexdigest()
    return "-".join(digest[i:i + 8] for i in range(0, 40, 8))

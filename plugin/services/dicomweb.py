"""Whether a server-wide DICOMweb search by someone who is not an admin can be let through,
because its answer will be trimmed to their grants.

It can when the installed DICOMweb plugin searches through Orthanc's /tools/find with the caller's
headers (1.9 and later, policies/qido.py): the plugin's search then reaches our own /tools/find,
which answers it over the caller's studies only (handlers/orthanc.py). With an older plugin
(Debian 12's 1.7) such a search would see every study, and stays refused.
"""

from __future__ import annotations

import threading

from plugin.policies.qido import forwards_searches
from plugin.services.core import Core, CoreError


class DicomWebSearches:
    def __init__(self, core: Core) -> None:
        self._core = core
        self._answer: bool | None = None
        self._lock = threading.Lock()

    def trimmed(self) -> bool:
        """Read once from Orthanc (the plugin cannot change while Orthanc runs); False until known."""
        if self._answer is None:
            with self._lock:
                if self._answer is None:
                    self._answer = self._read()
        return self._answer

    def _read(self) -> bool:
        try:
            plugin = self._core.get("/plugins/dicom-web")
        except CoreError:
            return False  # no DICOMweb plugin: nothing to trim
        version = plugin.get("Version") if isinstance(plugin, dict) else None
        return isinstance(version, str) and forwards_searches(version)

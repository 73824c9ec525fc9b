"""Whether a server-wide DICOMweb search by someone who is not an admin can be let through,
because its answer will be trimmed to their grants.

It can when the Gate answers DICOMweb searches itself (services/dicomweb_search.py: Orthanc
before 1.11, whose DICOMweb plugin searches past every plugin's routes), or when the DICOMweb
plugin searches through Orthanc's /tools/find with the caller's headers (1.9 and later,
policies/qido.py): its search then reaches our own /tools/find, which answers it over the
caller's studies only (handlers/orthanc.py). Otherwise such a search would see every study, and
stays refused. Settled once Orthanc has started, when every plugin is loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from plugin.policies.qido import forwards_searches
from plugin.services.core import Core, CoreError

# A search arriving before Orthanc's "started" event (in practice never) waits this long for it.
START_WAIT_SECONDS = 5.0


class DicomWebSearches:
    def __init__(self, core: Core, log: Callable[[str], None]) -> None:
        self._core = core
        self._log = log
        self._answer: bool | None = None
        self._settled = threading.Event()
        self._waited = False

    def settle(self, answered_here: bool | None) -> None:
        """Once Orthanc has started: whether the Gate's own search routes answer the searches
        (None: it registered none, with Orthanc 1.11 or later)."""
        version = self._plugin_version()
        if answered_here is None:
            self._answer = version is not None and forwards_searches(version)
        elif answered_here:
            self._answer = True
            if version is not None and forwards_searches(version):
                self._log(f"Gate: answers DICOMweb searches itself as DICOMweb 1.7 does, with DICOMweb "
                          f"{version} installed on an Orthanc before 1.11")
        else:
            self._answer = False
            self._log("Gate: the DICOMweb plugin was loaded before the Python plugin, so it answers "
                      "searches itself and they stay refused to everyone but admins: list "
                      "libOrthancPython.so before libOrthancDicomWeb.so in Plugins")
        self._settled.set()

    def trimmed(self) -> bool:
        if self._answer is None and not self._waited:
            self._waited = True
            self._settled.wait(START_WAIT_SECONDS)
        return bool(self._answer)

    def _plugin_version(self) -> str | None:
        try:
            plugin = self._core.get("/plugins/dicom-web")
        except CoreError:
            return None  # no DICOMweb plugin
        version = plugin.get("Version") if isinstance(plugin, dict) else None
        return version if isinstance(version, str) else None

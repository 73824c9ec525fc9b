"""When a doctor's server-wide DICOMweb search is let through to be trimmed (services/dicomweb.py)."""

from __future__ import annotations

import pytest

from plugin.services.core import CoreError
from plugin.services.dicomweb import DicomWebSearches


class PluginCore:
    def __init__(self, version: str | None) -> None:
        self.version = version

    def get(self, path: str) -> dict:
        assert path == "/plugins/dicom-web"
        if self.version is None:
            raise CoreError(404, "unknown plugin")
        return {"ID": "dicom-web", "Version": self.version}


@pytest.mark.parametrize("version, answered_here, trimmed", [
    ("1.7", True, True),  # the Gate's own search routes answer (Orthanc 1.10)
    ("1.7", False, False),  # registered, but the plugin was loaded first and kept them
    ("1.7", None, False),  # Orthanc 1.11+ with a plugin that searches past us
    ("1.20", None, True),  # the plugin searches through our /tools/find
    ("mainline", None, True),
    (None, None, False),  # no DICOMweb plugin
])
def test_settled_once_orthanc_has_started(version, answered_here, trimmed):
    logged: list[str] = []
    searches = DicomWebSearches(PluginCore(version), logged.append)
    searches.settle(answered_here)
    assert searches.trimmed() is trimmed
    assert bool(logged) is (answered_here is False)


def test_a_plugin_loaded_first_is_named_in_the_log_and_newer_plugins_too():
    logged: list[str] = []
    DicomWebSearches(PluginCore("1.7"), logged.append).settle(False)
    DicomWebSearches(PluginCore("1.13"), logged.append).settle(True)
    assert "list libOrthancPython.so before libOrthancDicomWeb.so" in logged[0]
    assert "DICOMweb 1.13" in logged[1]


def test_before_orthanc_has_started_nothing_is_let_through(monkeypatch):
    monkeypatch.setattr("plugin.services.dicomweb.START_WAIT_SECONDS", 0.01)
    searches = DicomWebSearches(PluginCore("1.20"), lambda message: None)
    assert searches.trimmed() is False

"""Orthanc Explorer 2's configuration per caller (policies/explorer2.py) and its page (ui_pages)."""

from __future__ import annotations

import pytest

from plugin.policies.explorer2 import (
    DEFAULT_UI_OPTIONS,
    PRE_LOGIN,
    SWITCHES,
    Explorer2Caller,
    configuration,
    merged,
    plugins_part,
)
from plugin.policies.grants import GrantSet, GrantTerm
from plugin.policies.levels import AccessLevel
from plugin.services.explorer2 import Explorer2
from plugin.services.ui_pages import OE2_INDEX, UiPages, themed


def _caller(level: AccessLevel | None = None, admin: bool = False, shares: bool = True,
            local: bool = True) -> Explorer2Caller:
    return Explorer2Caller("drnkosi", "Dr N Nkosi", admin, level, local, shares)


def _options(caller: Explorer2Caller, section: dict | None = None, read_only: bool = False) -> dict:
    return configuration(section or {}, {}, caller, read_only=read_only)["UiOptions"]


ADMIN_ONLY = ("EnableUpload", "EnableAddSeries", "EnableSettings", "EnableJobsList", "EnableModification",
              "EnableAnonymization", "EnableEditLabels", "EnableSendTo", "EnableDicomModalities",
              "EnableDicomWebServers", "EnableWorklists")
DOWNLOADS = ("EnableDownloadZip", "EnableDownloadDicomFile")


def test_an_admin_gets_oe2s_defaults_with_the_gates_own_parts():
    options = _options(_caller(admin=True))
    for switch in ADMIN_ONLY + DOWNLOADS + ("EnableDeleteResources", "EnableStudyList"):
        assert options[switch] is True, switch
    assert options["EnableShares"] is True  # the Share button makes the Gate's links
    assert options["EnableAuditLogs"] is False and options["EnablePermissionsEdition"] is False
    assert options["StudyListColumns"] == DEFAULT_UI_OPTIONS["StudyListColumns"]


@pytest.mark.parametrize("level", list(AccessLevel) + [None])
def test_a_doctor_sees_only_what_their_best_level_allows(level):
    options = _options(_caller(level))
    for switch in ADMIN_ONLY:
        assert options[switch] is False, switch
    has = level is not None
    for switch in DOWNLOADS:
        assert options[switch] is (has and level >= AccessLevel.DOWNLOAD), switch
    assert options["EnableDeleteResources"] is (has and level >= AccessLevel.FULL)
    assert options["EnableShares"] is (has and level >= AccessLevel.SHARE)
    assert options["EnableStudyList"] is True and options["EnableViewerQuickButton"] is True
    assert options["AvailableLabels"] == []


def test_the_section_can_turn_things_off_but_never_on_beyond_the_level():
    section = {"UiOptions": {"EnableDownloadZip": False, "EnableUpload": True, "EnableShares": False,
                             "StudyListColumns": ["PatientName"], "EnableDownloadDicomDir": True}}
    doctor = _options(_caller(AccessLevel.SHARE), section)
    assert doctor["EnableDownloadZip"] is False and doctor["EnableUpload"] is False
    assert doctor["EnableShares"] is False and doctor["EnableDownloadDicomDir"] is True
    assert doctor["StudyListColumns"] == ["PatientName"]
    assert _options(_caller(AccessLevel.VIEW_ONLY), section)["EnableDownloadDicomDir"] is False


def test_shares_switched_off_in_the_gate_hide_the_button_for_everyone():
    assert _options(_caller(admin=True, shares=False))["EnableShares"] is False
    assert _options(_caller(AccessLevel.FULL, shares=False))["EnableShares"] is False


def test_a_read_only_server_offers_no_change():
    options = _options(_caller(admin=True), read_only=True)
    assert not any(options[s] for s in ("EnableUpload", "EnableDeleteResources", "EnableModification"))
    assert options["EnableDownloadZip"] is True


def test_password_change_only_for_local_accounts():
    assert _options(_caller(AccessLevel.VIEW_ONLY))["EnableChangePassword"] is True
    assert _options(_caller(AccessLevel.VIEW_ONLY, local=False))["EnableChangePassword"] is False


def test_the_document_names_who_is_signed_in_and_never_turns_on_keycloak_or_tokens():
    document = configuration({"Tokens": {"InstantLinksValidity": 60}, "CustomTitle": "Practice"}, {},
                             _caller(AccessLevel.DOWNLOAD))
    assert document["Profile"]["name"] == "Dr N Nkosi" and document["Profile"]["user-id"] == "drnkosi"
    assert document["Profile"]["authorized-labels"] == []
    assert document["Keycloak"] is None and document["Tokens"]["RequiredForLinks"] is False
    assert document["Tokens"] == {"InstantLinksValidity": 60, "ShareType": "stone-viewer-publication",
                                  "RequiredForLinks": False}
    assert document["CustomTitle"] == "Practice"
    assert document["Plugins"] == {}  # no Share button at download: no authorization plugin either
    shares = configuration({}, {}, _caller(AccessLevel.SHARE))
    assert shares["Plugins"]["authorization"]["Enabled"] is True  # OE2 shows Share only beside it
    assert PRE_LOGIN == {"Keycloak": None, "TokensLandingOptions": None, "Inbox": None}


def test_every_switch_the_table_names_is_one_oe2_has():
    assert set(SWITCHES) - set(DEFAULT_UI_OPTIONS) == {"EnablePermissionsEdition"}


def test_merging_is_oe2s():
    base = {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": 3}
    assert merged(base, {"a": {"y": 5}, "b": [9], "d": None}) == {"a": {"x": 1, "y": 5}, "b": [9], "c": 3, "d": None}
    assert base["a"] == {"x": 1, "y": 2}  # the defaults are not changed


def test_plugins_part_as_oe2_makes_it():
    infos = {"orthanc-explorer-2": {"ID": "orthanc-explorer-2", "RootUri": "../ui/app/", "Version": "1.14.1"},
             "dicom-web": {"ID": "dicom-web", "RootUri": "../dicom-web/app/client/index.html"},
             "python": {"ID": "python"}, "explorer.js": {}}
    part = plugins_part(infos, {"DicomWeb": {"Enable": True}, "PythonScript": "x.py"})
    assert part["orthanc-explorer-2"]["RootUri"] == "../../ui/app/"
    assert part["orthanc-explorer-2"]["Enabled"] is True
    assert part["dicom-web"]["Enabled"] is True and part["python"]["Enabled"] is True
    assert "explorer.js" not in part
    assert plugins_part(infos, {})["dicom-web"]["Enabled"] is False


def test_best_level_is_the_highest_unexpired_one():
    grants = GrantSet.of([("P1", GrantTerm(AccessLevel.FULL, 10.0))],
                         [("1.2", GrantTerm(AccessLevel.DOWNLOAD, 100.0)),
                          ("1.3", GrantTerm(AccessLevel.VIEW_ONLY, 100.0))])
    assert grants.best_level(5.0) is AccessLevel.FULL
    assert grants.best_level(50.0) is AccessLevel.DOWNLOAD
    assert grants.best_level(500.0) is None
    assert GrantSet().best_level(0.0) is None


PAGE = (b'<!DOCTYPE html>\n<html lang="en" data-bs-theme="light">\n<head>\n</head>\n'
        b'<body><div id="app"></div></body></html>\n')


def test_oe2s_page_carries_the_gates_script_for_everyone():
    pages = UiPages({OE2_INDEX: PAGE})
    for admin in (True, False):
        page = pages.page(OE2_INDEX, admin=admin)
        assert b'<script src="/gate/static/oe2-extension.js"></script>\n</head>' in page


def test_oe2s_page_in_the_dark_theme_when_its_section_says_so():
    assert b'data-bs-theme="dark"' in themed(OE2_INDEX, PAGE, {"OrthancExplorer2": {"Theme": "dark"}})
    assert themed(OE2_INDEX, PAGE, {"OrthancExplorer2": {"Theme": "light"}}) == PAGE
    assert themed("/app/explorer.html", PAGE, {"OrthancExplorer2": {"Theme": "dark"}}) == PAGE


class _Core:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get(self, path: str):  # noqa: ANN201
        self.asked.append(path)
        return ["explorer.js", "orthanc-explorer-2"] if path == "/plugins" else {"ID": path.rsplit("/", 1)[1]}


@pytest.mark.parametrize(("section", "loaded"), [
    ({}, True), ({"Enable": True, "Root": "/ui/"}, True), ({"Enable": False}, False), ({"Root": "/oe2/"}, False)])
def test_oe2_counts_as_loaded_only_enabled_at_its_default_root(section, loaded):
    core = _Core()
    explorer2 = Explorer2({"OrthancExplorer2": section}, core, None, None, True)  # type: ignore[arg-type]
    assert explorer2.loaded() is loaded
    explorer2.loaded()
    assert core.asked.count("/plugins") <= 1  # the plugins are read once

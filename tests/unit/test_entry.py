"""plugin/entry.py loaded with a fake `orthanc` module: what it registers and how it fails."""

from __future__ import annotations

import atexit
import importlib
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import plugin

GET = 1


def fake_orthanc(config: dict, core_version: tuple[int, int, int] = (1, 12, 7)) -> types.ModuleType:
    fake = types.ModuleType("orthanc")
    fake.HttpMethod = types.SimpleNamespace(GET=1, POST=2, PUT=3, DELETE=4)
    fake.ChangeType = types.SimpleNamespace(DELETED=1, NEW_SERIES=5, NEW_STUDY=6, STABLE_STUDY=9, ORTHANC_STARTED=10,
                                            ORTHANC_STOPPED=11)
    fake.CheckVersionAdvanced = lambda *version: int(core_version >= version)
    fake.GetConfiguration = lambda: json.dumps(config)
    fake.filters, fake.routes, fake.on_change, fake.errors, fake.received = [], {}, [], [], []
    fake.RegisterIncomingHttpRequestFilter = fake.filters.append
    fake.RegisterRestCallback = fake.routes.__setitem__
    fake.RegisterOnChangeCallback = fake.on_change.append
    fake.RegisterReceivedInstanceCallback = fake.received.append
    fake.explorer = []
    fake.ExtendOrthancExplorer = fake.explorer.append
    fake.ReceivedInstanceAction = types.SimpleNamespace(KEEP_AS_IS=0, MODIFY=1, DISCARD=2)
    fake.LogError = fake.errors.append
    fake.LogWarning = fake.LogInfo = lambda message: None
    return fake


@pytest.fixture
def load_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Import plugin.entry against a fake orthanc with the given Gate section; undo afterwards.
    (What it would register to run at interpreter exit is run by the teardown instead.)"""
    monkeypatch.setattr(atexit, "register", lambda function: function)
    names = ("orthanc", "plugin.orthanc_api", "plugin.entry")
    saved = {name: sys.modules.get(name) for name in names}
    loaded: list[types.ModuleType] = []

    def load(gate: dict, core_version: tuple[int, int, int] = (1, 12, 7),
             **orthanc_keys: object) -> tuple[types.ModuleType, types.ModuleType]:
        fake = fake_orthanc({"StorageDirectory": str(tmp_path / "storage"), "Gate": gate, **orthanc_keys},
                            core_version)
        sys.modules["orthanc"] = fake
        for name in names[1:]:
            sys.modules.pop(name, None)
        entry = importlib.import_module("plugin.entry")
        loaded.append(entry)
        return entry, fake

    yield load
    for entry in loaded:
        if entry._runtime is not None:
            entry._runtime.stop()
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module
    for attribute in ("entry", "orthanc_api"):
        if hasattr(plugin, attribute) and sys.modules.get(f"plugin.{attribute}") is None:
            delattr(plugin, attribute)


def owned(fake: types.ModuleType) -> tuple[str, ...]:
    """The route regexes the Gate answers, in order: all of them behind the one route it registers."""
    [(regex, table)] = fake.routes.items()
    assert regex == table.regex
    return table.regexes


def test_it_registers_one_filter_its_routes_and_a_stop_callback(load_entry):
    entry, fake = load_entry({})
    assert len(fake.filters) == 1 and len(fake.on_change) == 1
    assert owned(fake)[-1] == "/gate/(.*)"  # the catch-all must come last
    assert {"/", "/gate/health", "/gate/login", "/gate/logout"} <= set(owned(fake))


SEARCH_ROUTES = {"/dicom-web/studies", "/dicom-web/series", "/dicom-web/instances", "/dicom-web/studies/([^/]*)/series",
                 "/dicom-web/studies/([^/]*)/instances", "/dicom-web/studies/([^/]*)/series/([^/]*)/instances"}


def test_before_orthanc_1_11_it_answers_the_dicomweb_plugins_searches_itself(load_entry, tmp_path):
    library = tmp_path / "libOrthancDicomWeb.so"
    library.write_bytes(b"")
    entry, fake = load_entry({}, (1, 10, 1), Plugins=[str(library)])
    assert SEARCH_ROUTES <= set(owned(fake)) and entry._searches_registered
    assert set(owned(fake)[:len(SEARCH_ROUTES)]) == SEARCH_ROUTES  # before the DICOMweb plugin's, as registered
    assert owned(fake)[-1] == "/gate/(.*)"


@pytest.mark.parametrize("core_version, plugins, dicomweb", [
    ((1, 12, 7), True, {}),  # its DICOMweb plugin searches through our /tools/find
    ((1, 10, 1), False, {}),  # no DICOMweb plugin: no search routes to answer
    ((1, 10, 1), True, {"Enable": False}),
    ((1, 10, 1), True, {"Root": "/dicomweb/"}),  # routes the gate does not classify as DICOMweb
])
def test_otherwise_the_search_routes_stay_the_plugins(load_entry, tmp_path, core_version, plugins, dicomweb):
    library = tmp_path / "libOrthancDicomWeb.so"
    library.write_bytes(b"")
    entry, fake = load_entry({}, core_version, Plugins=[str(library)] if plugins else [], DicomWeb=dicomweb)
    assert not SEARCH_ROUTES & set(owned(fake)) and not entry._searches_registered


def test_it_extends_orthanc_explorer_and_owns_the_uis_entry_pages(load_entry):
    entry, fake = load_entry({})
    assert len(fake.explorer) == 1 and ".warning-insecure" in fake.explorer[0]
    assert {r"/app/([^/]+\.html)", r"/web-viewer/app/([^/]+\.html)"} <= set(owned(fake))


def test_orthancs_changes_reach_the_resource_locator(load_entry, monkeypatch):
    entry, fake = load_entry({})
    [on_change] = fake.on_change
    locator = entry._runtime.access.locator
    seen: list[tuple] = []
    monkeypatch.setattr(locator, "study_added", lambda study: seen.append(("new", study)))
    monkeypatch.setattr(locator, "resource_deleted", lambda: seen.append(("deleted",)))
    monkeypatch.setattr(entry._runtime.follower, "wake", lambda: seen.append(("arrivals",)))
    on_change(fake.ChangeType.NEW_SERIES, 2, "series-1")
    on_change(fake.ChangeType.NEW_STUDY, 1, "study-1")
    on_change(fake.ChangeType.DELETED, 3, "instance-1")
    on_change(fake.ChangeType.STABLE_STUDY, 1, "study-1")
    assert seen == [("new", "study-1"), ("arrivals",), ("deleted",), ("arrivals",)]


def test_changes_without_a_runtime_are_ignored(load_entry, tmp_path):
    (tmp_path / "storage").mkdir()
    (tmp_path / "storage" / "gate.sqlite").write_bytes(b"not a database" * 100)
    entry, fake = load_entry({})
    [on_change] = fake.on_change
    assert entry._runtime is None
    on_change(fake.ChangeType.NEW_STUDY, 1, "study-1")
    on_change(fake.ChangeType.STABLE_STUDY, 1, "study-1")
    on_change(fake.ChangeType.DELETED, 1, "study-1")
    on_change(fake.ChangeType.ORTHANC_STOPPED, 0, "")


def test_a_bad_gate_section_stops_the_import_naming_the_key(load_entry):
    with pytest.raises(RuntimeError, match="Gate.NoSuchKey"):
        load_entry({"NoSuchKey": 1})


def test_an_exception_inside_the_gate_denies(load_entry, monkeypatch):
    entry, fake = load_entry({})
    [gate_filter] = fake.filters
    assert gate_filter("/gate/health", method=GET, ip="127.0.0.1", headers={}, get={}) is True

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in the gate")

    monkeypatch.setattr(entry._runtime.gate, "check", broken)
    assert gate_filter("/gate/health", method=GET, ip="127.0.0.1", headers={}, get={}) is False
    assert any("internal error" in message for message in fake.errors)


def test_malformed_arguments_from_orthanc_deny(load_entry):
    entry, fake = load_entry({})
    [gate_filter] = fake.filters
    assert gate_filter("/patients", method=GET, ip="127.0.0.1", headers=None, get=["not", "a", "dict"]) is False


def test_an_unusable_store_refuses_all_but_health(load_entry, tmp_path):
    (tmp_path / "storage").mkdir()
    (tmp_path / "storage" / "gate.sqlite").write_bytes(b"not a database" * 100)
    entry, fake = load_entry({})
    [gate_filter] = fake.filters
    assert entry._runtime is None and "store unavailable at start-up" in entry._startup_error
    assert gate_filter("/gate/health", method=GET, ip="", headers={}, get={}) is True
    assert gate_filter("/patients", method=GET, ip="", headers={}, get={}) is False
    assert gate_filter("/gate/login", method=GET, ip="", headers={}, get={}) is False


def test_the_filter_asks_the_gate_without_a_body(load_entry, monkeypatch):
    """Orthanc's request filter is never given request bodies (1.10.1 and 1.12), so the gate is never
    asked to trust one: requests naming their resources only in a body are admin-only instead."""
    entry, fake = load_entry({})
    [gate_filter] = fake.filters
    asked: list[tuple] = []
    monkeypatch.setattr(entry._runtime.gate, "check", lambda *args, **kwargs: asked.append((args, kwargs)) or False)
    gate_filter("/tools/create-archive", method=2, ip="127.0.0.1", headers={}, body=b'["x"]')
    [(args, kwargs)] = asked
    assert args[:5] == ("POST", "/tools/create-archive", "127.0.0.1", {}, {}) and len(args) == 6 and kwargs == {}


def test_every_received_object_is_kept_unless_a_held_upload_says_otherwise(load_entry):
    entry, fake = load_entry({})
    [on_received] = fake.received
    assert on_received(b"not even DICOM", 1) == (fake.ReceivedInstanceAction.KEEP_AS_IS, None)
    entry._runtime.gate.uploads.expect(frozenset({("PAT-1", "1.1")}), lambda reason, carried: None)
    assert on_received(b"not even DICOM", 1) == (fake.ReceivedInstanceAction.DISCARD, None)
    entry._runtime.gate.uploads.begin_request()
    assert on_received(b"not even DICOM", 1) == (fake.ReceivedInstanceAction.KEEP_AS_IS, None)


def test_an_error_checking_a_held_upload_discards_and_one_outside_keeps(load_entry, monkeypatch):
    entry, fake = load_entry({})
    [on_received] = fake.received
    uploads = entry._runtime.gate.uploads

    def broken(dicom):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(uploads, "received", broken)
    assert on_received(b"x", 1) == (fake.ReceivedInstanceAction.KEEP_AS_IS, None)  # a modality's study stays
    uploads.expect(frozenset({("PAT-1", "1.1")}), lambda reason, carried: None)
    assert on_received(b"x", 1) == (fake.ReceivedInstanceAction.DISCARD, None)
    assert any("checking a received object" in message for message in fake.errors)


def test_without_a_runtime_received_objects_are_kept(load_entry, tmp_path):
    (tmp_path / "storage").mkdir()
    (tmp_path / "storage" / "gate.sqlite").write_bytes(b"not a database" * 100)
    entry, fake = load_entry({})
    [on_received] = fake.received
    assert on_received(b"x", 1) == (fake.ReceivedInstanceAction.KEEP_AS_IS, None)

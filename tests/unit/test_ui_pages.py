"""The UIs' entry pages, found in the files that embed them (services/ui_pages.py)."""

from __future__ import annotations

from pathlib import Path

from plugin.services.ui_pages import page_in, read_pages

EXPLORER = b'<!DOCTYPE html>\n<html>\n<head>\n  <title>Orthanc Explorer</title>\n</head>\n</html>\n'
VIEWER = b'<!doctype html>\n<html lang="us">\n<head><title>Orthanc Web Viewer</title></head>\n</html>\n'


def binary(*pages: bytes) -> bytes:
    return b"\x7fELF\x00\x01junk</html>" + b"\x00".join(pages) + b"\x00\x00more<!DOCTYPE html>"


def test_the_page_is_cut_from_its_doctype_to_its_end():
    assert page_in(binary(EXPLORER), b"<title>Orthanc Explorer</title>") == EXPLORER
    assert page_in(binary(VIEWER), b"<title>Orthanc Web Viewer</title>") == VIEWER


def test_no_page_unless_exactly_one_plain_document_is_there():
    marker = b"<title>Orthanc Explorer</title>"
    assert page_in(binary(), marker) is None
    assert page_in(binary(EXPLORER, EXPLORER), marker) is None
    assert page_in(binary(EXPLORER.replace(b"</html>", b"")), marker) is None  # no end
    assert page_in(binary(EXPLORER.replace(b"<head>", b"<he\x00ad>")), marker) is None  # not one array
    assert page_in(binary(EXPLORER.replace(b"<head>", b"<he\xffad>")), marker) is None  # not text


def test_explorer_unless_disabled_and_a_plugins_page_when_it_is_loaded(tmp_path: Path):
    exe = tmp_path / "Orthanc"
    exe.write_bytes(binary(EXPLORER))
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "libOrthancWebViewer.so").write_bytes(binary(VIEWER))
    warnings: list[str] = []
    pages = read_pages({"Plugins": ["plugins"]}, tmp_path, warnings.append, exe)
    assert pages.found == {"/app/explorer.html": EXPLORER, "/web-viewer/app/viewer.html": VIEWER}
    assert warnings == []
    pages = read_pages({"OrthancExplorerEnabled": False}, tmp_path, warnings.append, exe)
    assert pages.found == {} and pages.missing == frozenset()


def test_a_page_that_cannot_be_found_is_missing_and_said(tmp_path: Path):
    exe = tmp_path / "Orthanc"
    exe.write_bytes(b"an Orthanc built otherwise")
    warnings: list[str] = []
    pages = read_pages({}, tmp_path, warnings.append, exe)
    assert pages.found == {} and pages.missing == {"/app/explorer.html"}
    assert "/app/explorer.html" in warnings[0] and "503" in warnings[0]


def test_a_non_admin_gets_the_viewer_with_its_extension_and_an_admin_without(tmp_path: Path):
    lib = tmp_path / "libOrthancWebViewer.so.2.8"
    lib.write_bytes(binary(VIEWER))
    pages = read_pages({"Plugins": [str(lib)], "OrthancExplorerEnabled": False}, tmp_path, print)
    assert pages.page("/web-viewer/app/viewer.html", admin=True) == VIEWER
    extended = pages.page("/web-viewer/app/viewer.html", admin=False)
    assert extended == VIEWER.replace(b"</head>", b'<script src="/gate/static/web-viewer-extension.js"></script>\n'
                                                  b"</head>")
    assert (Path("plugin/static") / "web-viewer-extension.js").is_file()

"""The HTML entry pages of the UIs this Orthanc serves, read once at start-up, so the Gate can own
their paths: a browser without a session is sent to sign in (the request filter can only refuse),
a signed-in one gets the page exactly as Orthanc or its plugin would have served it.

Why read them from the executable: a plugin cannot fetch another handler's static file
(`RestApiGet` reaches only the REST API; `RestApiGetAfterPlugins` would come back to the Gate's own
route, which must be registered first to win). Orthanc and its plugins embed their web files
uncompressed (EmbedResources.py turns each into a byte array), so each page is found in the file
that serves it by a line only that page holds. A page that cannot be found so is not served: its
path answers 503 and the start-up log says why (see `read_pages`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

MAX_PAGE_BYTES = 1 << 20


@dataclass(frozen=True)
class EmbeddedPage:
    path: str  # the URL path the page is served at
    owner: str  # "orthanc" (the core's Orthanc Explorer), else the plugin library's name prefix
    marker: bytes  # a line that only this page holds, in the file that embeds it
    # A script of plugin/static/ added to the page for users who are not admins (what their level
    # allows); Orthanc Explorer has its own hook for that (ExtendOrthancExplorer), for everyone.
    extension: str = ""
    extension_for_admins: bool = False  # ... and for admins too (OE2's sign-out is for everyone)


# Orthanc Explorer 2's app: one page for every route of the app (handlers/explorer2.py); its
# element for the app is named "app" in this page only (the others OE2 embeds name theirs apart).
OE2_INDEX = "/ui/app/index.html"
PAGES = (
    EmbeddedPage("/app/explorer.html", "orthanc", b"<title>Orthanc Explorer</title>"),
    EmbeddedPage("/web-viewer/app/viewer.html", "libOrthancWebViewer", b"<title>Orthanc Web Viewer</title>",
                 "web-viewer-extension.js"),
    EmbeddedPage(OE2_INDEX, "libOrthancExplorer2", b'<div id="app"></div>', "oe2-extension.js", True),
)
EXTENSIONS = {page.path: page for page in PAGES if page.extension}


@dataclass(frozen=True)
class UiPages:
    """The pages found (path -> bytes), and the paths this server has but whose page was not found."""

    found: dict[str, bytes]
    missing: frozenset[str] = frozenset()

    def page(self, path: str, admin: bool = True) -> bytes | None:
        """The page at `path`; for a user who is not an admin, with its extension script if it has one
        (before `</head>`, so it runs before the page's own scripts)."""
        page = self.found.get(path)
        extended = EXTENSIONS.get(path)
        if page is None or extended is None or (admin and not extended.extension_for_admins):
            return page
        tag = f'<script src="/gate/static/{extended.extension}"></script>\n'.encode()
        return page.replace(b"</head>", tag + b"</head>", 1)


NO_PAGES = UiPages({})


def page_in(binary: bytes, marker: bytes) -> bytes | None:
    """The HTML document around `marker` in `binary` (from its doctype to `</html>` and the line break
    after it), or None unless exactly one such plain-text document is there."""
    if binary.count(marker) != 1:
        return None
    at = binary.find(marker)
    start = max(binary.rfind(b"<!DOCTYPE html>", 0, at), binary.rfind(b"<!doctype html>", 0, at))
    end = binary.find(b"</html>", at)
    if start < 0 or end < 0:
        return None
    end += len(b"</html>")
    if binary[end:end + 1] == b"\n":
        end += 1
    page = binary[start:end]
    if len(page) > MAX_PAGE_BYTES or b"\x00" in page:
        return None
    try:
        page.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return page


def plugin_files(plugins: Iterable[str], base_dir: Path) -> list[Path]:
    """The shared libraries Orthanc's "Plugins" names (a folder stands for the libraries in it)."""
    files: list[Path] = []
    for entry in plugins:
        path = Path(entry) if Path(entry).is_absolute() else base_dir / entry
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix == ".so" or ".so." in p.name))
        elif path.exists():
            files.append(path)
    return files


def read_pages(orthanc_config: dict, base_dir: Path, warn: Callable[[str], None],
               executable: Path = Path("/proc/self/exe")) -> UiPages:
    """The entry pages of the UIs this Orthanc serves: Orthanc Explorer unless it is disabled
    (OrthancExplorerEnabled), a plugin's page when that plugin is loaded."""
    sources: dict[str, Path] = {}
    if orthanc_config.get("OrthancExplorerEnabled", True) is not False:
        sources["orthanc"] = executable
    for library in plugin_files(orthanc_config.get("Plugins") or (), base_dir):
        for page in PAGES:
            if library.name.startswith(page.owner + "."):
                sources.setdefault(page.owner, library)
    found: dict[str, bytes] = {}
    missing: set[str] = set()
    for page in PAGES:
        source = sources.get(page.owner)
        if source is None:
            continue
        try:
            content = page_in(source.read_bytes(), page.marker)
        except OSError:
            content = None
        if content is None:
            missing.add(page.path)
            warn(f"Gate: could not find the page {page.path} in {source}; it answers 503 until that is fixed")
        else:
            found[page.path] = themed(page.path, content, orthanc_config)
    return UiPages(found, frozenset(missing))


def themed(path: str, page: bytes, orthanc_config: dict) -> bytes:
    """OE2's page in the theme its section names, as OE2 serves it (it embeds the light one)."""
    section = orthanc_config.get("OrthancExplorer2")
    if path == OE2_INDEX and isinstance(section, dict) and section.get("Theme") == "dark":
        return page.replace(b'data-bs-theme="light"', b'data-bs-theme="dark"')
    return page

"""The OHIF Viewer under /ohif/: the build scripts/fetch_ohif.py prepared, with our own
app-config.js (its data source is this server's DICOMweb, so the session cookie goes along)."""

from __future__ import annotations

from pathlib import Path

from plugin.handlers.http import Request, Response
from plugin.handlers.shared import page_visitor
from plugin.policies.routes import is_viewer_page
from plugin.services.runtime import Runtime

PLUGIN_DIR = Path(__file__).resolve().parents[1]
APP_DIR = PLUGIN_DIR.parent / "var" / "ohif" / "app"
APP_CONFIG = PLUGIN_DIR / "static" / "ohif" / "app-config.js"
INDEX = "index.html"

TYPES = {"js": "text/javascript", "mjs": "text/javascript", "css": "text/css", "html": "text/html; charset=utf-8",
         "json": "application/json", "wasm": "application/wasm", "woff2": "font/woff2", "woff": "font/woff",
         "png": "image/png", "svg": "image/svg+xml", "ico": "image/x-icon", "xml": "application/xml",
         "map": "application/json", "txt": "text/plain; charset=utf-8"}
# The viewer's file names carry a content hash (or are icons), so a browser may keep them a while;
# its pages and configuration are asked for again each time.
ASSET_CACHE = {"Cache-Control": "private, max-age=86400"}
# OHIF runs inline scripts, compiles WebAssembly codecs and starts workers from blobs; nothing may
# come from, or go to, another site (no CDN, and DICOMweb is this same server).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' "
                               "'wasm-unsafe-eval' blob:; worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self' data: blob:; "
                               "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def viewer(runtime: Runtime, request: Request, rest: str = "") -> Response:
    segments = ["ohif", *[s for s in rest.split("/") if s]]
    if is_viewer_page(segments):
        return _page(runtime, request, segments)
    return _asset(segments[1:])


def _page(runtime: Runtime, request: Request, segments: list[str]) -> Response:
    visitor = page_visitor(runtime, request)
    if isinstance(visitor, Response):
        return visitor
    name = segments[-1] if len(segments) > 1 and segments[-1].endswith(".html") else INDEX
    body = _read(name)
    if body is None:
        return Response(503, b"The OHIF Viewer is not installed on this server (make install fetches it).\n")
    return Response(200, body, TYPES["html"], PAGE_HEADERS)


def _asset(parts: list[str]) -> Response:
    name = "/".join(parts)
    if name == "app-config.js":
        return Response(200, APP_CONFIG.read_bytes(), TYPES["js"])
    body = _read(name)
    if body is None:
        return Response.json({"error": "not_found", "message": "No such file"}, 404)
    extension = name.rsplit(".", 1)[-1].lower()
    return Response(200, body, TYPES.get(extension, "application/octet-stream"), ASSET_CACHE)


def _read(name: str) -> bytes | None:
    """A file of the prepared build, never one outside it."""
    path = (APP_DIR / name).resolve()
    if not path.is_relative_to(APP_DIR.resolve()) or not path.is_file():
        return None
    return path.read_bytes()

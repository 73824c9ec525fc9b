#!/usr/bin/env python3
"""Fetches the pinned OHIF Viewer build (npm package @ohif/app) and prepares it to be served by
the Gate under /ohif/ (handlers/ohif.py). Idempotent: once prepared, it does nothing.

OHIF's npm build is made for the site root (`PUBLIC_URL=/`, webpack's public path "/"), so the
absolute references to its own files are moved under /ohif/: index.html, the webpack runtime of
every bundle that has one (the app and its web workers), the manifest and the stylesheet's font.
Each rewrite must change exactly the places we expect; if a new OHIF version moves them, this
script fails instead of preparing a half-working viewer. app-config.js is not taken from the
package: the Gate serves its own (plugin/static/ohif/app-config.js).

The tarball is fetched with `npm pack` (the registry's ordinary client), checked against the
SHA-256 pinned here, cached in var/ohif/, and unpacked into var/ohif/app (both git-ignored).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.13.2"
SHA256 = "b189d3963bfc58e9394a9db8c7be75d07beb029ec211dbb126d47b62969dd3f1"
PUBLIC_PATH = "/ohif/"

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "var" / "ohif"
TARBALL = CACHE / f"ohif-app-{VERSION}.tgz"
APP = CACHE / "app"
STAMP = APP / ".prepared"
STAMP_TEXT = f"@ohif/app {VERSION} sha256 {SHA256} public path {PUBLIC_PATH}\n"

WEBPACK_PUBLIC_PATH = '__webpack_require__.p = "/";'


class PrepareError(RuntimeError):
    pass


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_tarball() -> None:
    if TARBALL.is_file() and sha256(TARBALL) == SHA256:
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        print(f"Fetching @ohif/app@{VERSION} from npm (about 50 MB)...", flush=True)
        subprocess.run(["npm", "pack", f"@ohif/app@{VERSION}", "--silent", "--pack-destination", tmp],
                       check=True, stdout=subprocess.DEVNULL)
        fetched = Path(tmp) / f"ohif-app-{VERSION}.tgz"
        actual = sha256(fetched)
        if actual != SHA256:
            raise PrepareError(f"@ohif/app@{VERSION}: SHA-256 {actual} is not the pinned {SHA256}")
        fetched.replace(TARBALL)


def rewrite(path: Path, pattern: str, replacement: str, expected: int | None = None) -> None:
    """Replace `pattern` (a regex) in a text file; `expected` occurrences exactly, or at least one."""
    text = path.read_text(encoding="utf-8")
    new, count = re.subn(pattern, replacement, text)
    if count == 0 or (expected is not None and count != expected):
        raise PrepareError(f"{path.name}: expected {expected or 'some'} of {pattern!r}, found {count}")
    path.write_text(new, encoding="utf-8")


def move_under_public_path(dist: Path) -> None:
    prefix = PUBLIC_PATH
    rewrite(dist / "index.html", r'window\.PUBLIC_URL="/"', f'window.PUBLIC_URL="{prefix}"', expected=2)
    # Every href and src of the page points at the site root: one level down, except full URLs.
    rewrite(dist / "index.html", r'((?:href|src)=")/(?!/)', rf"\g<1>{prefix}")
    rewrite(dist / "manifest.json", r'"/assets/', f'"{prefix}assets/')
    rewrite(dist / "app.bundle.css", r"url\(/(?!/)", f"url({prefix}")
    runtimes = [p for p in dist.glob("*.js") if WEBPACK_PUBLIC_PATH in p.read_text(encoding="utf-8")]
    if not any(p.name.startswith("app.bundle.") for p in runtimes):
        raise PrepareError("app bundle: webpack's public path not found")
    for bundle in runtimes:
        rewrite(bundle, re.escape(WEBPACK_PUBLIC_PATH), f'__webpack_require__.p = "{prefix}";', expected=1)
    # The package's own configuration points at a public demo server: never served (ours is).
    (dist / "app-config.js").unlink()


def extract(archive: tarfile.TarFile, target: Path) -> None:
    """Plain files and folders only, each inside `target` (Debian 12's Python 3.11.2 predates
    extractall's `filter`, so the checks of its "data" filter that matter here are made here)."""
    root = target.resolve()
    members = []
    for member in archive.getmembers():
        path = (root / member.name).resolve()
        if not path.is_relative_to(root) or not (member.isfile() or member.isdir()):
            raise PrepareError(f"@ohif/app@{VERSION}: refusing the archive member {member.name!r}")
        member.mode = 0o755 if member.isdir() else 0o644
        members.append(member)
    archive.extractall(target, members=members)  # noqa: S202 - every member checked above


def prepare() -> None:
    if STAMP.is_file() and STAMP.read_text() == STAMP_TEXT:
        return
    fetch_tarball()
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        with tarfile.open(TARBALL) as archive:
            extract(archive, Path(tmp))
        dist = Path(tmp) / "package" / "dist"
        if not (dist / "index.html").is_file():
            raise PrepareError(f"@ohif/app@{VERSION} ships no dist/index.html")
        move_under_public_path(dist)
        (dist / STAMP.name).write_text(STAMP_TEXT)
        if APP.exists():
            shutil.rmtree(APP)
        dist.replace(APP)
    print(f"OHIF {VERSION} prepared in {APP.relative_to(REPO)}, served at {PUBLIC_PATH}")


if __name__ == "__main__":
    try:
        prepare()
    except (PrepareError, subprocess.CalledProcessError, OSError) as exc:
        print(f"fetch_ohif: {exc}", file=sys.stderr)
        sys.exit(1)

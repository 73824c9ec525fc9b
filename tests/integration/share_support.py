"""Helpers for test_shares.py: the big CT study (generated once, cached under var/), share pages
fetched as a patient's browser would (requests with their own cookie jar), and the Orthanc
process's resident memory."""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from pathlib import Path

import pydicom
import requests

from tests.conftest import Server
from tests.ct_series import Patient, ct_study
from tests.harness import REPO

CT_CACHE = REPO / "var" / "test-artefacts" / "shares-ct200"
CT_PATIENT = Patient("SHARE-CT-1", "MTHEMBU^NOMSA", "19750612", "F")
CT_SLICES = 200
CT_VERSION = 2  # noise over all 16 bits of every pixel
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PREVIEW = re.compile(r'src="(/share/preview/[^"]+)"')


def cached_ct_study() -> tuple[str, list[Path]]:
    """A 200-slice 512x512 16-bit CT study (105 MB), written once into var/test-artefacts/ and
    reused: its StudyInstanceUID and files.

    Orthanc deflates its ZIP archives, and tests/ct_series.py's slices (noise in the low bytes only)
    shrink to about 70 MB in one; here every pixel is noise over all 16 bits, so the ZIP stays over
    100 MB, the size the streaming test is about. The manifest is written last: a run killed while
    generating leaves none, and the next run starts over."""
    manifest = CT_CACHE / "manifest.json"
    if manifest.exists():
        listed = json.loads(manifest.read_text())
        files = [CT_CACHE / name for name in listed["files"]]
        if listed.get("version") == CT_VERSION and len(files) == CT_SLICES and all(f.exists() for f in files):
            return listed["study_uid"], files
        manifest.unlink()
    for old in CT_CACHE.glob("*.dcm"):
        old.unlink()
    study_uid, files = ct_study(CT_CACHE, CT_PATIENT, CT_SLICES, description="CT ABDOMEN")
    for path in files:
        dataset = pydicom.dcmread(path)
        dataset.BitsStored, dataset.HighBit = 16, 15
        dataset.PixelData = os.urandom(len(dataset.PixelData))
        dataset.save_as(path, enforce_file_format=True)
    manifest.write_text(json.dumps({"version": CT_VERSION, "study_uid": study_uid, "files": [f.name for f in files]}))
    return study_uid, files


def random_token() -> str:
    """Well-formed (43 URL-safe characters), issued by nobody."""
    return secrets.token_urlsafe(32)


class Visitor:
    """A patient's browser as plain HTTP: its own cookie jar; redirects are not followed."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.http = requests.Session()

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.srv.url(path), timeout=60, allow_redirects=False, **kwargs)

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs) -> requests.Response:
        return self.http.post(self.srv.url(path), data=data or {}, timeout=60, allow_redirects=False, **kwargs)

    def open(self, token: str, password: str = "", lang: str = "en") -> requests.Response:
        """POST the landing form; the answer (303 to /share/view when the link opened)."""
        return self.post(f"/share/{token}", {"password": password, "lang": lang})

    def opened(self, token: str, password: str = "", lang: str = "en") -> requests.Response:
        """Open the link and GET the studies page, asserting both worked."""
        answer = self.open(token, password, lang)
        assert answer.status_code == 303 and answer.headers["Location"] == "/share/view", \
            (answer.status_code, answer.text[:300])
        assert self.http.cookies.get("gate_share"), answer.headers.get("Set-Cookie")
        page = self.get("/share/view")
        assert page.status_code == 200, page.text[:300]
        return page

    @property
    def session_cookie(self) -> str:
        return self.http.cookies.get("gate_share") or ""

    def csrf(self) -> str:
        page = self.get("/share/view")
        assert page.status_code == 200, (page.status_code, page.text[:300])
        return CSRF.search(page.text).group(1)

    def download(self, csrf: str | None = None) -> requests.Response:
        """POST /share/download (the 303 to the archive route with its ticket cookie, or a refusal)."""
        return self.post("/share/download", {"csrf_token": csrf if csrf is not None else self.csrf()})


def ticket_of(answer: requests.Response) -> str:
    """The download ticket a 303 from /share/download set (gate_download=...)."""
    found = re.search(r"gate_download=([^;]+)", answer.headers.get("Set-Cookie", ""))
    assert found, answer.headers
    return found.group(1)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


class RssSampler:
    """The highest VmRSS of a process, sampled every `interval` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = rss_kib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, rss_kib(self.pid))


def wait_until(condition, seconds: float = 10.0, interval: float = 0.05):  # noqa: ANN001, ANN201
    """Poll `condition()` until it is truthy (its value) or the time is up (its last value)."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def error_page_type(srv) -> str:  # noqa: ANN001 - a tests.conftest.Server
    """What an error status's page arrives as: from Orthanc 1.12.2 the core sends any error body as
    text/plain, so the Gate sends the page's text (plugin/orthanc_api.py page_text)."""
    version = srv.admin("GET", "/system").json()["Version"]
    parts = tuple(int(p) for p in version.split(".")) if version != "mainline" else (999,)
    return "text/plain" if parts >= (1, 12, 2) else "text/html"

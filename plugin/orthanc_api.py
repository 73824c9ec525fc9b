"""The thin, version-aware layer over the `orthanc` module (Python plugin 4.x and 5.x+).

Everything that differs between Orthanc 1.10.1 / Python plugin 4.0 (Debian 12) and
Orthanc 1.12 / Python plugin 5.x+ (the orthancteam image) is settled here.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orthanc

from plugin.handlers.http import ANSWER_HEADERS, Response
from plugin.services.core import CoreError

# The incoming-request filter receives the method as a plain int (orthanc.HttpMethod values).
METHOD_NAMES = {int(orthanc.HttpMethod.GET): "GET", int(orthanc.HttpMethod.POST): "POST",
                int(orthanc.HttpMethod.PUT): "PUT", int(orthanc.HttpMethod.DELETE): "DELETE"}


def method_name(method: Any) -> str:
    name = METHOD_NAMES.get(method)  # the filter's usual case: a plain int
    if name is not None:
        return name
    if isinstance(method, str):
        return method.upper()
    return METHOD_NAMES.get(int(method), "UNKNOWN")


def configuration() -> dict[str, Any]:
    """Orthanc's configuration file keys (GetConfiguration returns a JSON string)."""
    return json.loads(orthanc.GetConfiguration())


def command_line() -> list[str]:
    """Orthanc's own command line (the SDK does not tell it): /proc/self/cmdline."""
    try:
        raw = Path("/proc/self/cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


def configuration_path() -> Path | None:
    """The configuration file or folder Orthanc was started with: its one argument that is not an
    option (None when it was started without one)."""
    for arg in command_line()[1:]:
        if not arg.startswith("-"):
            return Path(arg).resolve()
    return None


def configuration_base() -> Path:
    """The folder Orthanc resolves relative paths in its configuration against (StorageDirectory):
    the configuration file's folder, or the folder given as configuration."""
    path = configuration_path()
    if path is None:
        return Path.cwd()
    return path if path.is_dir() else path.parent


def log_file() -> Path | None:
    """The file Orthanc writes its log to: --logfile=FILE, or the newest file in --logdir=DIR (None
    when it logs to its standard error only)."""
    for arg in command_line()[1:]:
        if arg.startswith("--logfile="):
            return Path(arg.split("=", 1)[1]).resolve()
        if arg.startswith("--logdir="):
            folder = Path(arg.split("=", 1)[1])
            logs = sorted(folder.glob("*.log*"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
            return logs[-1].resolve() if logs else None
    return None


def restart(before: Callable[[], None]) -> None:
    """Stop Orthanc cleanly, then start it again as the same process (same id, command line and
    environment). Not /tools/reset: Orthanc would load the Python plugin again into the same
    process, where compiled modules (SQLAlchemy's, cryptography's) cannot be initialised twice, and
    Orthanc stops for good. Here /tools/shutdown stops the servers and closes Orthanc's database,
    and the Python plugin's finalisation (atexit, which runs this handler first: last registered)
    runs `before` (the Gate's own stop) and replaces the process with a fresh Orthanc."""
    executable, argv = os.readlink("/proc/self/exe"), command_line()

    def start_again() -> None:
        before()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(executable, argv, dict(os.environ))  # noqa: S606 - Orthanc itself, as it was started

    atexit.register(start_again)
    try:
        orthanc.RestApiPost("/tools/shutdown", "")
    except Exception:
        atexit.unregister(start_again)  # no restart asked after all: a later stop must stay a stop
        raise


# Orthanc error codes (OrthancPluginErrorCode) -> the HTTP status the core answers them with.
_ERROR_STATUS = {2: 501, 3: 400, 5: 400, 6: 400, 7: 404, 8: 400, 12: 400, 13: 404, 15: 400, 17: 404, 21: 404,
                 27: 400, 28: 400, 29: 401, 33: 400, 34: 406, 41: 416}


class CoreApi:
    """Orthanc's own REST API, called in-process (not through the gate): the services' `Core`."""

    def get(self, path: str) -> Any:
        return json.loads(self.get_raw(path))

    def post(self, path: str, body: bytes | str) -> Any:
        return json.loads(self.post_raw(path, body))

    def get_raw(self, path: str) -> bytes:
        try:
            return _as_bytes(orthanc.RestApiGet(path))
        except orthanc.OrthancException as exc:
            raise _core_error(exc) from None

    def post_raw(self, path: str, body: bytes | str) -> bytes:
        try:
            return _as_bytes(orthanc.RestApiPost(path, body))
        except orthanc.OrthancException as exc:
            raise _core_error(exc) from None

    def delete(self, path: str) -> None:
        try:
            orthanc.RestApiDelete(path)
        except orthanc.OrthancException as exc:
            raise _core_error(exc) from None

    def create_dicom(self, tags: dict[str, Any]) -> bytes:
        """Orthanc's CreateDicom (no pixel data, no generated UIDs) of tags named `gggg,eeee`."""
        try:
            return bytes(orthanc.CreateDicom(json.dumps(tags), None, orthanc.CreateDicomFlags.NONE))
        except (ValueError, orthanc.OrthancException):
            raise CoreError(500, "Orthanc could not create that DICOM object") from None

    def tag_name(self, tag: int, private_creator: str = "") -> str | None:
        """The keyword Orthanc's dictionary gives a tag (a private one: under that creator), None if it has none."""
        name = orthanc.GetTagName(tag >> 16, tag & 0xFFFF, private_creator)
        return None if name == UNKNOWN_TAG_NAME else name


    def preview_image(self, instance_oid: str, size: int) -> tuple[bytes, str]:
        """The core renders PNG to an internal GET (choosing JPEG takes an Accept header, which
        RestApiGet cannot send on Python plugin 4.0): re-compressed here by Orthanc's own codecs, a
        phone on a slow network gets a JPEG a fraction of the size."""
        png = self.get_raw(f"/instances/{instance_oid}/rendered?width={size}&height={size}&smooth=1")
        try:
            image = orthanc.UncompressImage(png, orthanc.ImageFormat.PNG)
            pixel_format = image.GetImagePixelFormat()
            if pixel_format not in (orthanc.PixelFormat.GRAYSCALE8, orthanc.PixelFormat.RGB24):
                return png, "image/png"
            jpeg = orthanc.CompressJpegImage(pixel_format, image.GetImageWidth(), image.GetImageHeight(),
                                             image.GetImagePitch(), image.GetImageBuffer(), PREVIEW_JPEG_QUALITY)
        except (orthanc.OrthancException, TypeError, ValueError):
            return png, "image/png"
        return _as_bytes(jpeg), "image/jpeg"

    def archives_many(self) -> bool:
        return core_version() >= (1, 12, 2)


UNKNOWN_TAG_NAME = "Unknown Tag & Data"  # DCMTK's DcmTag_ERROR_TagName
PREVIEW_JPEG_QUALITY = 80


def answers_dicomweb_searches() -> bool:
    """Whether the Gate must answer DICOMweb searches itself: with Orthanc before 1.11 (Debian 12's
    1.10.1 comes with DICOMweb 1.7) the DICOMweb plugin asks the core for what a search finds past
    every plugin's routes, so only owning its search routes lets a search be trimmed. From 1.11 on
    the plugins shipped with it (1.9+) search through our /tools/find (policies/qido.py)."""
    return not orthanc.CheckVersionAdvanced(1, 11, 0)


def get_after_plugins(path: str) -> bytes | None:
    """An internal GET of `path` that the plugins' routes may answer (a probe), None on error."""
    try:
        return _as_bytes(orthanc.RestApiGetAfterPlugins(path))
    except orthanc.OrthancException:
        return None


def _as_bytes(answer: Any) -> bytes:
    # Python plugin 4.0 answers str for some calls and bytes for others.
    return answer.encode("utf-8") if isinstance(answer, str) else bytes(answer)


def _core_error(exc: Exception) -> CoreError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else -1
    message = str(exc.args[1]) if len(exc.args) > 1 else "error in Orthanc"
    return CoreError(_ERROR_STATUS.get(code, 500), message)


def log_warning(message: str) -> None:
    orthanc.LogWarning(message)


def log_error(message: str) -> None:
    orthanc.LogError(message)


# Every callable handed to the Python plugin is also referenced from here, for as long as the
# interpreter lives. From Python plugin 4.3 on (5.0 on Debian 13, the orthancteam image),
# OrthancPluginFinalize drops the plugin's reference to each REST callback without holding the GIL
# (FinalizeRestCallbacks in Sources/RestCallbacks.cpp takes only a boost mutex since 4.3; 4.0 took
# the PythonLock there). A callback nothing else references, such as a closure, is then freed with
# no Python thread state, and Orthanc dies with SIGSEGV (exit 139) at every stop. Referenced here,
# that decrement only decrements; Py_Finalize frees the objects later, with the GIL. Harmless on
# 4.0. Any callback the Gate registers must come through here.
_registered: list[Any] = []


def _keep(callback: Any) -> Any:
    _registered.append(callback)
    return callback


def register_filter(callback: Any) -> None:
    orthanc.RegisterIncomingHttpRequestFilter(_keep(callback))


def register_route(regex: str, callback: Any) -> None:
    orthanc.RegisterRestCallback(regex, _keep(callback))


# How boost::regex reads a pattern by default (Perl syntax, as Orthanc and the Python plugin build them).
BOOST_PERL = re.DOTALL | re.MULTILINE


class RouteTable:
    """Routes (regex, callback), the first that matches answering, registered as ONE Orthanc route.

    Orthanc matches the URI of every request against each route regex the plugins registered, in
    order, until one matches (OrthancPlugins::Handle), and only then serves its own routes: each
    regex we register is one more boost regex_match on every request, the DICOM downloads the Gate
    never answers included. Each costs some 800 instructions (callgrind, Orthanc 1.10 and 1.12
    alike), so fifty separate routes cost more than the request filter's own work. Their
    alternation costs one match; only the requests it matches (ours) pay for finding the route
    again here, with Python's re, told to read them as boost does: "." matches a newline too, and
    "^" and "$" match at one (a decoded URI may hold one).
    """

    def __init__(self, routes: Sequence[tuple[str, Any]]) -> None:
        if not all(regex.startswith("/") for regex, _ in routes):
            raise ValueError("every route regex must start with /")
        self.regexes = tuple(regex for regex, _ in routes)
        self._routes = [(re.compile(regex, BOOST_PERL), callback) for regex, callback in routes]

    @property
    def regex(self) -> str:
        # The leading "/" (every URI's) is kept out of the alternatives: boost then skips each
        # alternative that cannot start with the URI's second character instead of trying it.
        return "/(?:" + "|".join(f"(?:{regex[1:]})" for regex in self.regexes) + ")"

    def __call__(self, output: Any, uri: str, **request: Any) -> None:
        for pattern, callback in self._routes:
            match = pattern.fullmatch(uri)
            if match is not None:
                callback(output, uri, **{**request, "groups": match.groups()})
                return
        output.SendHttpStatusCode(404)  # not reached: Orthanc calls this for a URI one route matches


def register_routes(routes: Sequence[tuple[str, Any]]) -> None:
    table = RouteTable(routes)
    register_route(table.regex, table)


def register_on_change(on_stop: Any, on_new_study: Any, on_deleted: Any, on_started: Any, on_stable_study: Any) -> None:
    """Orthanc's one change callback (run on its own thread): stop, a new or stable study, a deletion, start.

    `on_stop` runs on ORTHANC_STOPPED, and once more when the interpreter is finalised (so it must
    be idempotent). Orthanc 1.10.1 and 1.12.7 alike send ORTHANC_STOPPED before they stop their HTTP
    server (main.cpp), and the Python plugin runs the Python callback to its end before Orthanc goes
    on: the Gate's threads are stopped before any plugin is finalised, but requests can still come
    in after it. The second call, from atexit (which Py_Finalize runs after the HTTP server has
    stopped, with the interpreter whole), signs what those requests wrote, and stops the Gate if
    ORTHANC_STOPPED never came (a start-up aborted after the plugins were loaded).
    """
    def on_change(change_type: int, _resource_type: int, resource_id: str) -> None:
        if change_type == orthanc.ChangeType.NEW_STUDY:
            on_new_study(resource_id)
        elif change_type == orthanc.ChangeType.STABLE_STUDY:
            on_stable_study()
        elif change_type == orthanc.ChangeType.DELETED:
            on_deleted()
        elif change_type == orthanc.ChangeType.ORTHANC_STOPPED:
            on_stop()
        elif change_type == orthanc.ChangeType.ORTHANC_STARTED:
            on_started()

    orthanc.RegisterOnChangeCallback(_keep(on_change))
    atexit.register(on_stop)


def extend_explorer(javascript: str) -> None:
    """Add to what Orthanc serves as /plugins/explorer.js, which every Orthanc Explorer page loads."""
    orthanc.ExtendOrthancExplorer(javascript)


def register_received_instance(keep: Any) -> None:
    """Orthanc's one received-instance callback (every object about to be stored, any origin):
    `keep(dicom_bytes)` says whether to store it. Must not raise: the Python plugin would store."""
    def on_received(dicom: bytes, _origin: int) -> tuple[Any, None]:
        if keep(dicom):
            return orthanc.ReceivedInstanceAction.KEEP_AS_IS, None
        return orthanc.ReceivedInstanceAction.DISCARD, None

    orthanc.RegisterReceivedInstanceCallback(_keep(on_received))


def send(output: Any, response: Response) -> None:
    """Write a handler's Response with the output calls each status needs."""
    if response.status == 405:
        output.SendMethodNotAllowed(response.headers.get("Allow", "GET"))
        return
    if response.status >= 400 and not response.body:
        output.SendHttpStatusCode(response.status)  # a bare status, as Orthanc answers a plugin's error
        return
    if response.parts is not None:
        # Orthanc refuses any header but Set-Cookie on a multipart answer.
        output.StartMultipartAnswer("related", response.content_type)
        for part in response.parts:
            output.SendMultipartItem(part)
        return
    for name, value in {**ANSWER_HEADERS, **response.headers}.items():
        output.SetHttpHeader(name, value)
    if response.challenge:
        # Not SendUnauthorized(): it cannot carry the JSON body that says what is missing.
        output.SetHttpHeader("WWW-Authenticate", f'Basic realm="{response.challenge}", charset="UTF-8"')
    if response.status == 200:
        output.AnswerBuffer(response.body, response.content_type)
    elif 300 <= response.status < 400:
        # Not output.Redirect(): it forces a cacheable 301 and drops the headers set above.
        output.SendHttpStatusCode(response.status)
    else:
        body = response.body
        if core_labels_status_bodies():
            # The core sends this body as text/plain, whatever we say: a page (the share link's
            # "gone" and "not found", say) is sent as its readable text rather than as markup.
            if response.content_type.startswith("text/html"):
                body = page_text(body)
        elif response.content_type:
            output.SetHttpHeader("Content-Type", response.content_type)
        _send_status(output, response.status, body)


_core_version: tuple[int, ...] | None = None


def python_plugin_version() -> str:
    """The Python plugin's version as Orthanc lists it ("4.0", "5.0"); empty if it cannot be read
    (call it once Orthanc has started: its REST API answers from then on)."""
    try:
        return str(json.loads(orthanc.RestApiGet("/plugins/python")).get("Version", ""))
    except (orthanc.OrthancException, ValueError, AttributeError):
        return ""


def core_version() -> tuple[int, ...]:
    """Orthanc's version, asked once (the Python plugin has no call for it; "mainline" is newest)."""
    global _core_version
    if _core_version is None:
        version = json.loads(orthanc.RestApiGet("/system")).get("Version", "")
        try:
            _core_version = tuple(int(part) for part in version.split("."))
        except ValueError:
            _core_version = (999,)
    return _core_version


def core_labels_status_bodies() -> bool:
    """From Orthanc 1.12.2 on, a status sent with a body always gets `Content-Type: text/plain`
    from the core, added beside any header we set; setting ours too would send two."""
    return core_version() >= (1, 12, 2)


class _PageText(HTMLParser):
    """An HTML page's visible text, a line per block (its head, styles and scripts left out)."""

    BLOCKS = frozenset({"p", "div", "h1", "h2", "h3", "li", "tr", "br", "header", "footer", "section", "dt", "dd",
                        "form", "label", "button", "main", "nav", "ul", "dl"})
    HIDDEN = frozenset({"head", "style", "script", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:  # noqa: ARG002 - HTMLParser's signature
        if tag in self.HIDDEN:
            self._hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a":
            href = dict(attrs).get("href") or ""
            if href.startswith(("tel:", "mailto:")):
                self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            # Runs of white space are one space, kept at the ends: "a <b>b</b> c" stays "a b c".
            self.parts.append(re.sub(r"\s+", " ", data))


def page_text(html: bytes) -> bytes:
    parser = _PageText()
    parser.feed(html.decode("utf-8", "replace"))
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return ("\n".join(line for line in lines if line) + "\n").encode("utf-8")


def _send_status(output: Any, status: int, body: bytes) -> None:
    # Python plugin 4.2 changed SendHttpStatus(status, body: str, size) to (status, body: bytes).
    try:
        output.SendHttpStatus(status, body)
    except TypeError:
        text = body.decode("utf-8")
        output.SendHttpStatus(status, text, len(text.encode("utf-8")))

"""Orthanc loads this file (PythonScript): it wires the Gate into Orthanc's callbacks.

If the configuration is wrong this module raises, and Orthanc refuses to start. If the store
cannot be reached or migrated, Orthanc starts but every request is refused except /gate/health,
which answers 503 and says why.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Callable
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]


def _use_repository_venv() -> None:
    """Put the repository's .venv and the repository itself on sys.path (API.md: nothing to set)."""
    for site in sorted((_ROOT / ".venv" / "lib").glob("python3*/site-packages")):
        if str(site) not in sys.path:
            sys.path.insert(0, str(site))
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))


_use_repository_venv()

from plugin import orthanc_api  # noqa: E402
from plugin.config import (  # noqa: E402
    dicomweb_plugin_listed,
    holds_python_lock,
    load_gate_config,
    open_to_any_modality,
)
from plugin.errors import ConfigError, GateError, StoreUnavailable  # noqa: E402
from plugin.handlers import api  # noqa: E402
from plugin.handlers.http import Request, Response, error_response, is_browser_session  # noqa: E402
from plugin.handlers.pages import STATIC_DIR  # noqa: E402
from plugin.handlers.routes import DICOMWEB_ROOT, DICOMWEB_SEARCH_ROUTES, HEALTH, ROUTES  # noqa: E402
from plugin.policies.shares import redacted_path  # noqa: E402
from plugin.services.explorer2 import Explorer2  # noqa: E402
from plugin.services.runtime import Runtime, build_runtime, hold_state_directory  # noqa: E402
from plugin.services.server_admin import OrthancProcess  # noqa: E402
from plugin.services.ui_pages import read_pages  # noqa: E402

# Orthanc runs the filter and then the REST callback of one request on the same OS thread; the
# filter is the only one told the client's address, so it leaves it here for the handlers. Keyed
# by the OS thread id, not a threading.local: the Python plugin gives each callback a new Python
# thread state, and a threading.local set in the filter is gone when the REST callback runs.
_client_address_of_thread: dict[int, str] = {}
_runtime: Runtime | None = None
# GateService.remembered once started; until then nothing is remembered.
_remembered: Callable[[tuple], bool] = lambda memo_key: False  # noqa: E731
_NO_ARGS: dict[str, str] = {}
_startup_error = ""
# Whether the Gate registered the DICOMweb plugin's search routes, and the threads probing whether
# they, not the plugin's, answer (the first plugin to register a route keeps it).
_searches_registered = False
_probing: set[int] = set()
PROBE_ANSWER = b"orthanc-gate: search routes answered here"
PROBE_PATHS = ("/dicom-web/series", "/dicom-web/studies/0/series/0/instances")
# Orthanc Explorer as each user may use it: what their level allows, who they are, sign-out.
EXPLORER_EXTENSION = STATIC_DIR / "explorer-extension.js"

def _filter(uri: str, **request: object) -> bool:
    # Runs for every HTTP request, holding the GIL: a remembered read is answered in the first
    # lines (see GateService.remembered). Orthanc has applied any method override already, so
    # the method here is the one it will execute; the override header is in the key all the same,
    # so a remembered GET can never answer for an overridden request.
    try:
        headers = request.get("headers") or _NO_ARGS
        query = request.get("get")
        memo_key = (request.get("method"), uri, headers.get("authorization"), headers.get("cookie"),
                    headers.get("x-http-method-override"), tuple(query.items()) if query else None)
        if _remembered(memo_key):
            return True
    except Exception as exc:  # noqa: BLE001 - an error in the gate must deny, never allow
        orthanc_api.log_error(f"Gate: request refused after an internal error ({type(exc).__name__})")
        return False
    return _full_check(uri, request, headers, query or _NO_ARGS, memo_key)


def _full_check(uri: str, request: dict, headers: dict, query: dict, memo_key: tuple) -> bool:
    ip = request.get("ip") or ""
    method = orthanc_api.method_name(request.get("method"))
    try:
        if _runtime is None:
            return uri == "/gate/health"
        ip = _runtime.client_address(ip, headers)
        # For the handler that may answer next on this thread (ours, and the trimmed searches:
        # never remembered, so they always come through here).
        _client_address_of_thread[threading.get_ident()] = ip
        return _runtime.gate.check(method, uri, ip, headers, query, memo_key)
    except Exception as exc:  # noqa: BLE001 - an error in the gate must deny, never allow
        orthanc_api.log_error(f"Gate: request refused after an internal error ({type(exc).__name__})")
        try:
            _runtime.gate.deny_internal_error(method, uri, ip)
        except Exception as audit_exc:  # noqa: BLE001
            orthanc_api.log_error(f"Gate: could not audit that refusal ({type(audit_exc).__name__})")
        return False


def _route(handlers: dict):  # noqa: ANN202 - returns Orthanc's callback
    def callback(output, uri, **request) -> None:  # noqa: ANN001
        req = Request(method=str(request.get("method", "GET")).upper(), path=uri,
                      headers=request.get("headers") or {}, query=request.get("get") or {},
                      body=request.get("body") or b"", ip=_client_address_of_thread.get(threading.get_ident(), ""))
        handler = handlers.get(req.method)
        if handler is None:
            response = Response(405, headers={"Allow": ",".join(sorted(handlers))})
        elif _runtime is None:
            response = Response.json({"error": "unavailable", "message": _startup_error}, 503)
        else:
            response = _answer(handler, req, request.get("groups") or ())
        orthanc_api.send(output, response)

    return callback


def _answer(handler, req: Request, groups: tuple) -> Response:  # noqa: ANN001
    try:
        # The caller, identified once here and handed to the handler with the request.
        req = dataclasses.replace(req, identification=_runtime.authenticator.identify(req.headers, req.ip))
        return handler(_runtime, req, *groups)
    except GateError as exc:
        return error_response(exc, is_browser_session(req.headers))
    except Exception as exc:  # noqa: BLE001 - never a stack trace in an answer
        # Never the token of a share link (the second segment of /share/{token}) in the log.
        where = redacted_path(req.path).split("/")[1:3]
        orthanc_api.log_error(f"Gate: error in {req.method} {where}: {type(exc).__name__}")
        return Response.json({"error": "internal_error", "message": "Internal error; see the server log"}, 500)


def _search_route(handlers: dict):  # noqa: ANN202 - returns Orthanc's callback
    answer = _route(handlers)

    def callback(output, uri, **request) -> None:  # noqa: ANN001
        if threading.get_ident() in _probing:
            output.AnswerBuffer(PROBE_ANSWER, "text/plain")
            return
        answer(output, uri, **request)

    return callback


def _answers_searches_here() -> bool:
    """Whether our search routes, not the DICOMweb plugin's, answer: an internal probe."""
    _probing.add(threading.get_ident())
    try:
        return all(orthanc_api.get_after_plugins(path) == PROBE_ANSWER for path in PROBE_PATHS)
    finally:
        _probing.discard(threading.get_ident())


def _on_started() -> None:
    lock_warning = holds_python_lock(orthanc_api.configuration(), orthanc_api.python_plugin_version())
    if lock_warning:
        orthanc_api.log_warning(lock_warning)
    if _runtime is not None:
        try:
            _runtime.referrals.start()
        except Exception as exc:  # noqa: BLE001 - arrivals wait for the cursor; the rest must start
            orthanc_api.log_error(f"Gate: could not read Orthanc's change log at start ({type(exc).__name__}); "
                                  "arrivals are looked at again shortly")
        _runtime.follower.wake()
        if _runtime.sampler is not None:
            _runtime.sampler.wake()  # a first sample of the server's size, the dashboard plots' baseline
        _runtime.dicomweb_searches.settle(_answers_searches_here() if _searches_registered else None)


def _health(output, uri, **request) -> None:  # noqa: ANN001
    orthanc_api.send(output, api.health(_runtime, Request("GET", uri), _startup_error))


def _keep_received_instance(dicom: bytes) -> bool:
    """Objects a non-admin's upload carries must be of the study it was granted (services/uploads.py)."""
    if _runtime is None:
        return True  # every request is refused meanwhile; a modality's C-STORE must not be lost
    uploads = _runtime.gate.uploads
    try:
        return uploads.received(dicom)
    except Exception as exc:  # noqa: BLE001 - refuse a held upload, never lose anything else
        orthanc_api.log_error(f"Gate: error checking a received object ({type(exc).__name__})")
        return not uploads.expecting


def _on_stop() -> None:
    if _runtime is not None:
        _runtime.stop()


def _on_new_study(study_id: str) -> None:
    if _runtime is not None:
        _runtime.access.locator.study_added(study_id)
        _runtime.follower.wake()  # arrival reads the study from Orthanc's change log (services/referrals.py)


def _on_stable_study() -> None:
    if _runtime is not None:
        _runtime.follower.wake()


def _on_deleted() -> None:
    if _runtime is not None:
        _runtime.access.locator.resource_deleted()


def initialise() -> None:
    global _runtime, _startup_error, _remembered, _searches_registered
    orthanc_config = orthanc_api.configuration()
    try:
        config = load_gate_config(orthanc_config, orthanc_api.configuration_base())
        hold_state_directory(config)
    except ConfigError as exc:
        orthanc_api.log_error(f"Gate: bad configuration: {exc.message}")
        raise RuntimeError(f"Gate: bad configuration: {exc.message}") from None
    try:
        _runtime = build_runtime(config, orthanc_api.log_warning, orthanc_api.CoreApi())
    except (StoreUnavailable, OSError) as exc:
        _startup_error = f"store unavailable at start-up: {getattr(exc, 'message', None) or exc}"
        orthanc_api.log_error(f"Gate: {_startup_error}; refusing every request but /gate/health")
    if _runtime is not None:
        _remembered = _runtime.gate.remembered
        _runtime.ui_pages = read_pages(orthanc_config, orthanc_api.configuration_base(), orthanc_api.log_warning)
        _runtime.explorer2 = Explorer2(orthanc_config, _runtime.core, _runtime.store, _runtime.access,
                                       config.shares.enabled)
        _runtime.process = OrthancProcess(orthanc_config, orthanc_api.configuration_path(), orthanc_api.log_file,
                                          lambda: orthanc_api.restart(_on_stop))
    orthanc_api.register_filter(_filter)
    routes: list[tuple[str, Callable]] = []
    if orthanc_api.answers_dicomweb_searches() and dicomweb_plugin_listed(orthanc_config) \
            and config.dicomweb.enabled and config.dicomweb.root == DICOMWEB_ROOT:
        routes += [(regex, _search_route(handlers)) for regex, handlers in DICOMWEB_SEARCH_ROUTES]
        _searches_registered = True
    routes += [(regex, _health if regex == HEALTH else _route(handlers)) for regex, handlers in ROUTES]
    # As one Orthanc route, in this order: Orthanc tries every route regex on every request (RouteTable).
    orthanc_api.register_routes(routes)
    orthanc_api.register_on_change(_on_stop, _on_new_study, _on_deleted, _on_started, _on_stable_study)
    orthanc_api.register_received_instance(_keep_received_instance)
    orthanc_api.extend_explorer(EXPLORER_EXTENSION.read_text(encoding="utf-8"))
    stores_warning = open_to_any_modality(orthanc_config)
    if stores_warning:
        orthanc_api.log_warning(stores_warning)
    if _runtime is not None:
        orthanc_api.log_warning(f"Gate: started; store {config.database_url.split('://')[0]}, "
                                f"state in {config.state_directory}")


initialise()

"""The admin console's server page: the effective configuration with every secret redacted, the
check of the configuration file Orthanc would read again, Orthanc's jobs and log, and its restart
(after a fresh one-time code, and offered only when the configuration checks clean)."""

from __future__ import annotations

import json
from typing import Any

from plugin.errors import GateError
from plugin.handlers.http import Request, Response
from plugin.handlers.shared import ConsoleVisit, console_page, console_visit
from plugin.services import server_admin, server_config
from plugin.services.runtime import Runtime


def server_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    return _server(runtime, request, visit, "")


def restart(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    check = _check(runtime)
    try:
        server_admin.restart(runtime.store, runtime.audit_now, runtime.mfa, visit.actor, runtime.clock(),
                             runtime.process, [f"{p['key']}: {p['message']}" for p in check["problems"]])
    except GateError as exc:
        return _server(runtime, request, visit, exc.message, exc.status)
    return console_page(runtime, request, "admin/restarting.html", visit, section="Server", json={"restarting": True})


def _server(runtime: Runtime, request: Request, visit: ConsoleVisit, error: str, status: int = 200) -> Response:
    process = runtime.process
    configuration = server_config.redacted_configuration(process.configuration)
    check = _check(runtime)
    figures: dict[str, Any] = {"configuration": configuration, "check": check,
                               "jobs": server_admin.jobs(runtime.core), "log": server_admin.log_tail(process),
                               "can_restart": process.restart is not None and check["ok"]}
    return console_page(runtime, request, "admin/server.html", visit, status, section="Server", error=error,
                        configuration_text=json.dumps(configuration, indent=2, sort_keys=True), **figures, json=figures)


def _check(runtime: Runtime) -> dict[str, Any]:
    """The configuration file as Orthanc would read it at its next start."""
    path = runtime.process.configuration_path
    if path is None:
        return {"ok": False, "file": None, "problems": [{"key": "", "message": "Orthanc was started without a "
                                                         "configuration file the Gate can read again"}]}
    result = server_config.check_config_file(path)
    return {"ok": result.ok, "file": str(path),
            "problems": [{"key": problem.key, "message": problem.message} for problem in result.problems]}

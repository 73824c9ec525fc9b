"""JSON API under /gate/api/ and /gate/health."""

from __future__ import annotations

from plugin.errors import BadRequest, NotFound
from plugin.handlers.http import Request, Response
from plugin.handlers.shared import caller, caller_identification
from plugin.services.dashboard import home_of
from plugin.services.health import health_report
from plugin.services.runtime import Runtime

RESOURCE_KINDS = {"patients": "patient", "studies": "study", "series": "series", "instances": "instance"}


def me(runtime: Runtime, request: Request) -> Response:
    """Who the caller is, where their home page is (a doctor's: their dashboard), the CSRF token
    their session's forms carry (the UI extensions sign out with it), and with `?studies=ID` (or
    patients, series, instances) the access level they hold there: `null` for anything not theirs
    or not there, and for admins, whom grants do not concern."""
    identification = caller_identification(runtime, request)
    principal = identification.principal
    answer = {"username": principal.username, "roles": sorted(principal.roles), "via": principal.via,
              "must_change_password": principal.must_change_password,
              "home": home_of(runtime.store, principal, runtime.config.home_page),
              "csrf_token": identification.csrf_token if principal.via == "session" else None}
    asked = [(kind, request.query[kind]) for kind in RESOURCE_KINDS if kind in request.query]
    if len(asked) > 1:
        raise BadRequest("Ask about one resource at a time")
    if asked:
        kind, orthanc_id = asked[0]
        held = None if principal.is_admin else runtime.access.level_on(principal, RESOURCE_KINDS[kind], orthanc_id,
                                                                        runtime.clock())
        answer["access"] = {"resource": f"{kind}/{orthanc_id}", "level": held.label if held else None}
    return Response.json(answer)


def not_found(runtime: Runtime, request: Request, *_path: str) -> Response:
    """Any other /gate/ path: who are you first (401), then 404."""
    caller(runtime, request)
    raise NotFound("No such route")


def health(runtime: Runtime | None, request: Request, startup_error: str = "") -> Response:
    report = health_report(runtime.store if runtime else None, startup_error)
    return Response.json(report, 200 if report["status"] == "ok" else 503)

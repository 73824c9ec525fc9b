"""JSON API under /gate/api/ and /gate/health."""

from __future__ import annotations

from plugin.errors import (
    BadRequest,
    DirectoryDown,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthenticated,
    unavailable_message,
)
from plugin.handlers.http import Request, Response
from plugin.identity.authenticate import Identification
from plugin.policies.csrf import csrf_ok
from plugin.policies.routes import SAFE_METHODS
from plugin.policies.types import Principal
from plugin.services.dashboard import home_of
from plugin.services.health import health_report
from plugin.services.runtime import Runtime

RESOURCE_KINDS = {"patients": "patient", "studies": "study", "series": "series", "instances": "instance"}


def caller(runtime: Runtime, request: Request) -> Principal:
    """The signed-in caller who owes nothing more: a 401 with a challenge, a 503 when the directory
    is down, a 403 while a one-time code or a new password is still owed (such a caller may only
    finish signing in, at /gate/mfa or /gate/password, or sign out)."""
    return caller_identification(runtime, request).principal


def caller_identification(runtime: Runtime, request: Request) -> Identification:
    """`caller`, with what else identifying them told (the session's CSRF token)."""
    identification = runtime.authenticator.identify(request.headers, request.ip)
    if identification.unavailable:
        raise DirectoryDown(unavailable_message(identification.failure))
    if identification.retry_after:
        raise RateLimited(identification.failure, identification.retry_after)
    if identification.principal.is_anonymous:
        # The reason presented credentials failed tells the caller what to do (e.g. use the login
        # page for a one-time code); it names nothing they did not send.
        raise Unauthenticated(identification.failure or "sign in or send credentials")
    principal = identification.principal
    if principal.must_change_password:
        raise Forbidden("finish signing in first: choose a new password at /gate/password")
    if principal.mfa_pending:
        raise Forbidden("finish signing in first: prove your one-time code at /gate/mfa")
    return identification


def require_csrf(request: Request, identification: Identification) -> None:
    """A state change relying on the session cookie must pass the CSRF check (policies/csrf.py)."""
    principal = identification.principal
    if request.method not in SAFE_METHODS and not csrf_ok(request.method, principal.via, request.headers,
                                                           identification.csrf_token):
        raise Forbidden("cross-site request refused: send the X-CSRF-Token header given at sign-in")


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
        raise BadRequest("ask about one resource at a time")
    if asked:
        kind, orthanc_id = asked[0]
        held = None if principal.is_admin else runtime.access.level_on(principal, RESOURCE_KINDS[kind], orthanc_id,
                                                                        runtime.clock())
        answer["access"] = {"resource": f"{kind}/{orthanc_id}", "level": held.label if held else None}
    return Response.json(answer)


def not_found(runtime: Runtime, request: Request, *_path: str) -> Response:
    """Any other /gate/ path: who are you first (401), then 404."""
    caller(runtime, request)
    raise NotFound("no such route")


def health(runtime: Runtime | None, request: Request, startup_error: str = "") -> Response:
    report = health_report(runtime.store if runtime else None, startup_error)
    return Response.json(report, 200 if report["status"] == "ok" else 503)

"""JSON API under /gate/api/ and /gate/health."""

from __future__ import annotations

from plugin.errors import DirectoryDown, Forbidden, NotFound, RateLimited, Unauthenticated, unavailable_message
from plugin.handlers.http import Request, Response
from plugin.policies.types import Principal
from plugin.services.health import health_report
from plugin.services.runtime import Runtime


def caller(runtime: Runtime, request: Request) -> Principal:
    """The signed-in caller who owes nothing more: a 401 with a challenge, a 503 when the directory
    is down, a 403 while a one-time code or a new password is still owed (such a caller may only
    finish signing in, at /gate/mfa or /gate/password, or sign out)."""
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
    return principal


def me(runtime: Runtime, request: Request) -> Response:
    principal = caller(runtime, request)
    return Response.json({"username": principal.username, "roles": sorted(principal.roles), "via": principal.via,
                          "must_change_password": principal.must_change_password})


def not_found(runtime: Runtime, request: Request, *_path: str) -> Response:
    """Any other /gate/ path: who are you first (401), then 404."""
    caller(runtime, request)
    raise NotFound("no such route")


def health(runtime: Runtime | None, request: Request, startup_error: str = "") -> Response:
    report = health_report(runtime.store if runtime else None, startup_error)
    return Response.json(report, 200 if report["status"] == "ok" else 503)

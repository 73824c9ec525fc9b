"""What every handler needs from a request: who is calling (identified once, see `identified`), the
checks a state change must pass, a JSON body, the pages' templates and who opens a page. The one
home of these helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape

from plugin.audit.record import AuditRecord, iso_utc, patients_named
from plugin.errors import DirectoryDown, Forbidden, RateLimited, Unauthenticated, unavailable_message
from plugin.handlers.http import BadBody, Request, Response, sentence
from plugin.identity.authenticate import Identification
from plugin.policies.console import console_refusal
from plugin.policies.csrf import csrf_ok
from plugin.policies.routes import SAFE_METHODS
from plugin.policies.types import Principal
from plugin.services import users
from plugin.services.runtime import Runtime


def identified(runtime: Runtime, request: Request) -> Identification:
    """Who is calling, as the dispatcher identified them for this request (entry.py); a request
    built without (a unit test's) is identified here, once."""
    if request.identification is not None:
        return request.identification
    return runtime.authenticator.identify(request.headers, request.ip)


def caller(runtime: Runtime, request: Request) -> Principal:
    """The signed-in caller who owes nothing more: a 401 with a challenge, a 503 when the directory
    is down, a 403 while a one-time code or a new password is still owed (such a caller may only
    finish signing in, at /gate/mfa or /gate/password, or sign out)."""
    return caller_identification(runtime, request).principal


def caller_identification(runtime: Runtime, request: Request) -> Identification:
    """`caller`, with what else identifying them told (the session's CSRF token)."""
    identification = identified(runtime, request)
    if identification.unavailable:
        raise DirectoryDown(unavailable_message(identification.failure))
    if identification.retry_after:
        raise RateLimited(identification.failure, identification.retry_after)
    if identification.principal.is_anonymous:
        # The reason presented credentials failed tells the caller what to do (e.g. use the login
        # page for a one-time code); it names nothing they did not send.
        raise Unauthenticated(identification.failure or "Sign in or send credentials")
    principal = identification.principal
    if principal.must_change_password:
        raise Forbidden("Finish signing in first: choose a new password at /gate/password")
    if principal.mfa_pending:
        raise Forbidden("Finish signing in first: prove your one-time code at /gate/mfa")
    return identification


def require_csrf(request: Request, identification: Identification) -> None:
    """A state change relying on the session cookie must pass the CSRF check (policies/csrf.py)."""
    principal = identification.principal
    if request.method not in SAFE_METHODS and not csrf_ok(request.method, principal.via, request.headers,
                                                           identification.csrf_token):
        raise Forbidden("Cross-site request refused: send the X-CSRF-Token header given at sign-in")


def admin_actor(runtime: Runtime, request: Request) -> users.Actor:
    """The calling admin; a state change relying on the session cookie must pass the CSRF check."""
    identification = caller_identification(runtime, request)
    users.require_admin(identification.principal)
    require_csrf(request, identification)
    return users.Actor.calling(identification.principal, request.ip)


def json_object(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise BadBody("Send a JSON object, with Content-Type: application/json")
    try:
        data = json.loads(request.body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadBody("The request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise BadBody("The request body must be a JSON object")
    return data


def forget_who_sees_what(runtime: Runtime) -> None:
    """Grants now reach another login (or none): count it at once on this node; other nodes notice
    the grant version."""
    runtime.authenticator.invalidate()
    access = getattr(runtime, "access", None)
    if access is not None:
        access.invalidate()


# -- pages: templates, and who opens a page ------------------------------------------------------

PLUGIN_DIR = Path(__file__).resolve().parents[1]
_templates = Environment(loader=FileSystemLoader(PLUGIN_DIR / "templates"),
                         autoescape=select_autoescape(["html"]), auto_reload=False)


def render(name: str, status: int = 200, headers: dict[str, str] | None = None, **context: object) -> Response:
    """A page from its template; its `error` and `message` (often an error's text) read as sentences."""
    for key in ("error", "message", "field_error"):
        if isinstance(context.get(key), str):
            context[key] = sentence(context[key])
    return Response.html(_templates.get_template(name).render(**context), status, headers)


def ui_page_at(runtime: Runtime, request: Request, path: str) -> Response:
    """`ui_page` for the page read at start-up for `path` (several routes may serve one page)."""
    visitor = page_visitor(runtime, request)
    if isinstance(visitor, Response):
        return visitor
    page = runtime.ui_pages.page(path, admin=visitor.is_admin)
    if page is None:
        if path in runtime.ui_pages.missing:
            return Response(503, b"This page could not be read from Orthanc at start-up; see the server log.")
        return Response(404, b"Unknown page")
    return Response(200, page, "text/html")


def viewer_of(identification: Identification) -> dict[str, str] | None:
    """What a page's header shows of who is signed in, with the sign-out's CSRF token (base.html):
    for a browser's session only (a Basic caller has no sign-out)."""
    principal = identification.principal
    if principal.via != "session" or principal.username is None:
        return None
    return {"username": principal.username, "csrf_token": identification.csrf_token or ""}


def page_visitor(runtime: Runtime, request: Request) -> Principal | Response:
    """Who opens a UI's page (Orthanc Explorer, the Web Viewer, OHIF), or where their browser goes
    first: to sign in and back here, or to what signing in still owes."""
    visitor = page_identification(runtime, request)
    return visitor if isinstance(visitor, Response) else visitor.principal


def page_identification(runtime: Runtime, request: Request) -> Identification | Response:
    """`page_visitor`, with what else identifying them told (the session's CSRF token). The way back
    keeps the query as Orthanc handed it to the plugin (not decoded), so it comes back unchanged."""
    identification = identified(runtime, request)
    principal = identification.principal
    here = request.path + ("?" + "&".join(f"{k}={v}" for k, v in request.query.items()) if request.query else "")
    if principal.is_anonymous:
        return Response.redirect(f"/gate/login?next={quote(here, safe='/')}")
    if principal.must_change_password or principal.mfa_pending:
        return Response.redirect(next_step(principal, here))
    return identification


def next_step(principal: Principal, target: str) -> str:
    """Where a signed-in browser goes: what it still owes first (a new password, MFA enrolment)."""
    if principal.must_change_password:
        return "/gate/password"
    if principal.mfa_pending:
        return "/gate/mfa"
    return target



# -- the admin console's pages (handlers/admin*.py) -------------------------------------------------


@dataclass(frozen=True)
class ConsoleVisit:
    """An admin in a browser session with a one-time code proved, on a console page; for a POST,
    its form, whose CSRF token has been checked."""

    principal: Principal
    csrf_token: str
    actor: users.Actor
    form: dict[str, str]

    @property
    def viewer(self) -> dict[str, str]:
        """What every page shows of who is signed in (templates' `viewer`)."""
        return {"username": self.principal.username or "", "csrf_token": self.csrf_token}


def console_visit(runtime: Runtime, request: Request) -> ConsoleVisit | Response:
    """Who opens a console page, or the answer instead: sign in first (and come back), finish
    signing in, or a refusal that shows nothing of the console."""
    identification = page_identification(runtime, request)
    if isinstance(identification, Response):
        return identification
    principal = identification.principal
    refusal = console_refusal(principal)
    if refusal is not None:
        return render("admin/refused.html", 403, message=refusal, viewer=viewer_of(identification),
                      practice=runtime.config.practice_name)
    form: dict[str, str] = {}
    if request.method == "POST":
        form = request.form()
        if not csrf_ok("POST", "session", request.headers, identification.csrf_token, form.get("csrf_token")):
            return render("admin/refused.html", 400, viewer=None, practice=runtime.config.practice_name,
                          message="The form is stale or came from another site; reload the page and try again.")
    otp = form.get("otp", "")
    return ConsoleVisit(principal, identification.csrf_token or "", users.Actor.calling(principal, request.ip, otp),
                        form)


def console_page(runtime: Runtime, request: Request, template: str, visit: ConsoleVisit, status: int = 200,
         **context: object) -> Response:
    """A console page, or its data as JSON when the client asks for JSON (`json` in the context)."""
    if request.headers.get("accept", "").startswith("application/json") and "json" in context:
        return Response.json(context["json"], status)
    return render(template, status, viewer=visit.viewer, practice=runtime.config.practice_name, **context)


# -- what a list or search answered, for the audit -------------------------------------------------


def audit_answer(runtime: Runtime, principal: Principal, request: Request, family: str, count: int,
                 patient_ids: frozenset[str]) -> Response | None:
    """Record what a list or search answered (how many, whose); the 503 to send if it could not be.

    Identical answers (the same caller, route and path, patients and count) inside the coalescing
    window share the first one's durable row, as repeated reads do: the DICOMweb plugin of Orthanc
    1.12 asks /tools/find, as the caller, once for every frame a viewer fetches.
    """
    now = runtime.clock()
    reason = "admin" if principal.is_admin else "answer trimmed to grants"
    action = "view" if family == "patient" else "list"

    def record() -> AuditRecord:
        named, listed = patients_named(patient_ids)
        return AuditRecord(ts=iso_utc(now), actor=principal.username or "", action=action, outcome="allow",
                           reason=reason, roles=",".join(sorted(principal.roles)), source_ip=request.ip,
                           method=request.method, path=request.path[:512], route_class=family,
                           patient_id=named, detail=json.dumps({"returned": count, **listed}))
    key = ("answer", principal.username, family, request.method, request.path, patient_ids, count, reason)
    if not runtime.audit_read(key, record, now):
        return Response.json({"error": "store_unavailable", "message": "The audit could not be written"}, 503)
    return None

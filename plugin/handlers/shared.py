"""What every handler needs from a request: who is calling (identified once, see `caller`), the
checks a state change must pass, and a JSON body. The one home of these helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from plugin.errors import DirectoryDown, Forbidden, RateLimited, Unauthenticated, unavailable_message
from plugin.handlers.http import BadBody, Request, Response
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


def admin_actor(runtime: Runtime, request: Request) -> users.Actor:
    """The calling admin; a state change relying on the session cookie must pass the CSRF check."""
    identification = caller_identification(runtime, request)
    users.require_admin(identification.principal)
    require_csrf(request, identification)
    return users.Actor.calling(identification.principal, request.ip)


def json_object(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise BadBody("send a JSON object, with Content-Type: application/json")
    try:
        data = json.loads(request.body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadBody("the request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise BadBody("the request body must be a JSON object")
    return data


def forget_who_sees_what(runtime: Runtime) -> None:
    """Grants now reach another login (or none): count it at once on this node; other nodes notice
    the grant version."""
    runtime.authenticator.invalidate()
    access = getattr(runtime, "access", None)
    if access is not None:
        access.invalidate()


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
    # Imported here: pages.py renders the sign-in flow this builds on, and imports this module.
    from plugin.handlers.pages import page_identification, render

    identification = page_identification(runtime, request)
    if isinstance(identification, Response):
        return identification
    principal = identification.principal
    refusal = console_refusal(principal)
    if refusal is not None:
        viewer = {"username": principal.username, "csrf_token": identification.csrf_token} \
            if principal.via == "session" else None
        return render("admin/refused.html", 403, message=refusal, viewer=viewer,
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

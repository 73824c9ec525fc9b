"""Browser pages: `/` (where to go), sign-in, sign-out, password change, the set-password link, static
assets."""

from __future__ import annotations

import dataclasses
import re

from markupsafe import Markup

from plugin.errors import BadRequest, DirectoryDown, GateError, RateLimited, Unauthenticated
from plugin.handlers.http import Request, Response
from plugin.handlers.shared import (
    PLUGIN_DIR,
    identified,
    next_step,
    render,
    ui_page_at,
    viewer_of,
)
from plugin.identity.authenticate import SESSION_COOKIE, Identification
from plugin.policies.csrf import csrf_ok, same_origin
from plugin.policies.passwords import RULES as PASSWORD_RULES
from plugin.policies.redirects import local_path
from plugin.policies.types import Principal
from plugin.services import accounts, mfa, password_links
from plugin.services.dashboard import home_of
from plugin.services.runtime import Runtime

STATIC_DIR = PLUGIN_DIR / "static"
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*\.(css|js|png|svg|ico)$")
STATIC_TYPES = {"css": "text/css", "js": "text/javascript", "png": "image/png", "svg": "image/svg+xml",
                "ico": "image/x-icon"}

# The set-password pages: their address holds the link's secret, which no request may carry on.
LINK_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def _cookie(runtime: Runtime, value: str, max_age: int) -> str:
    secure = "; Secure" if runtime.config.secure_cookies else ""
    return f"{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"


def root(runtime: Runtime, request: Request) -> Response:
    identification = identified(runtime, request)
    if identification.principal.is_anonymous:
        return Response.redirect("/gate/login?next=/")  # "/": whichever home is theirs, once signed in
    return Response.redirect(destination(runtime, identification.principal, "/"))


def ui_page(runtime: Runtime, request: Request, _name: str = "") -> Response:
    """A UI's entry page (Orthanc Explorer, the Web Viewer): for anyone signed in, the page as
    Orthanc serves it (for non-admins, with the script that shows them only what their level
    allows), never cached (a stored copy would skip this check once the session ends); a browser
    without a session goes to sign in and comes back here. The page holds no patient data; what it
    then asks for is decided by the gate, request by request."""
    return ui_page_at(runtime, request, request.path)


def login_page(runtime: Runtime, request: Request) -> Response:
    asked = local_path(request.query.get("next"), "")
    principal = identified(runtime, request).principal
    if principal.via == "session":
        return Response.redirect(destination(runtime, principal, asked))
    # Without a page asked for, whose home it is is known only once signed in ("home" in the form).
    notice = "You have signed out." if request.query.get("signed_out") else ""
    return render("login.html", next=asked or runtime.config.home_page, home=not asked, error="", username="",
                  notice=notice)


def login(runtime: Runtime, request: Request) -> Response:
    # A browser sends Origin, or at least Referer, on a form post; scripts send neither.
    if (request.headers.get("origin") or request.headers.get("referer")) and not same_origin(request.headers):
        raise BadRequest("Sign-in from another site is refused")
    form = request.form()
    username, password = form.get("username", ""), form.get("password", "")
    asked = "" if form.get("home") else local_path(form.get("next"), "")
    config = runtime.config
    try:
        signed = accounts.sign_in(runtime.store, runtime.audit_now, runtime.authenticator, runtime.clock(), username,
                                  password, request.ip, config.session_idle_minutes * 60,
                                  config.session_max_hours * 3600, mfa=runtime.mfa, otp=form.get("otp", ""),
                                  refusals=runtime.audit_refusal)
    except (Unauthenticated, DirectoryDown, RateLimited) as exc:
        if request.wants_json:
            raise
        return render("login.html", status=200 if exc.status == 401 else exc.status,
                      next=asked or config.home_page, home=not asked, error=exc.message, username=username)
    cookie = {"Set-Cookie": _cookie(runtime, signed.token, int(config.session_max_hours * 3600))}
    if request.wants_json:
        principal = signed.principal
        return Response.json({"username": principal.username, "roles": sorted(principal.roles),
                              "must_change_password": principal.must_change_password,
                              "mfa_pending": principal.mfa_pending, "csrf_token": signed.csrf_token}, headers=cookie)
    return Response.redirect(destination(runtime, signed.principal, asked), cookie)


def destination(runtime: Runtime, principal: Principal, asked: str = "") -> str:
    """Where a signed-in browser goes: what signing in still owes first, then the page it asked for,
    else its own home (the doctor dashboard for doctors, HomePage for everyone else). The one place
    that decides; `asked` "/" or "" means no page in particular."""
    owed = next_step(principal, "")
    if owed:
        return owed
    return asked if asked not in ("", "/") else home_of(runtime.store, principal, runtime.config.home_page)


def logout(runtime: Runtime, request: Request) -> Response:
    identification = identified(runtime, request)
    principal = identification.principal
    if principal.via == "session":
        form = request.form()
        if not csrf_ok("POST", "session", request.headers, identification.csrf_token, form.get("csrf_token")):
            raise BadRequest("The sign-out form is stale or came from another site; reload the page")
        accounts.sign_out(runtime.store, runtime.audit_now, runtime.clock(), principal, request.ip)
        runtime.authenticator.invalidate(("session", principal.session_id))
    expired = {"Set-Cookie": _cookie(runtime, "", 0)}
    if request.wants_json:
        return Response.json({"signed_out": True}, headers=expired)
    return Response.redirect("/gate/login?signed_out=1", expired)


def logout_page(runtime: Runtime, request: Request) -> Response:
    """GET /gate/logout (a link, a bookmark): signed in, a button that signs out (a sign-out is a
    POST, so another site cannot sign anyone out with a link); else, that nobody is signed in."""
    identification = identified(runtime, request)
    return render("logout.html", viewer=viewer_of(identification))


def password_page(runtime: Runtime, request: Request) -> Response:
    identification = identified(runtime, request)
    if identification.principal.via != "session":
        return Response.redirect("/gate/login?next=/gate/password")
    return _password_form(identification, "")


def change_password(runtime: Runtime, request: Request) -> Response:
    """The form (current, new, confirm) or the same fields as JSON, where "confirm" may be left out.
    "current" is not asked of a session that owes a new password (services/accounts.py)."""
    identification, form = _session_form(runtime, request)
    principal = identification.principal
    json_body = request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"
    try:
        ended = accounts.change_password(runtime.store, runtime.audit_now, runtime.clock(), principal.username or "",
                                         form.get("current", ""), form.get("new", ""), request.ip,
                                         principal.session_id,
                                         confirm=form.get("confirm") if json_body else form.get("confirm", ""))
    except GateError as exc:
        if request.wants_json:
            raise
        return _password_form(identification, exc.message)
    # Forget every cached identity, the old password's Basic verification and the sessions just ended.
    runtime.authenticator.invalidate()
    if request.wants_json:
        return Response.json({"changed": True, "other_sessions_ended": ended})
    next_page = destination(runtime, dataclasses.replace(principal, must_change_password=False))
    if principal.must_change_password and not ended:
        return Response.redirect(next_page)  # the first sign-in goes straight on to its next step
    return render("password_changed.html", ended=ended, next=next_page, viewer=viewer_of(identification))


def _password_form(identification: Identification, error: str) -> Response:
    """The password page, again with its message after a mistake (200, as the sign-in page does)."""
    principal = identification.principal
    return render("password.html", csrf_token=identification.csrf_token, username=principal.username,
                  viewer=viewer_of(identification),
                  forced=principal.must_change_password, error=error, min_length=accounts.MIN_PASSWORD_LENGTH,
                  rules=PASSWORD_RULES)


def mfa_page(runtime: Runtime, request: Request) -> Response:
    identification = identified(runtime, request)
    principal = identification.principal
    if principal.via != "session":
        return Response.redirect("/gate/login?next=/gate/mfa")
    if principal.must_change_password:
        return Response.redirect("/gate/password")
    if mfa.is_enrolled(runtime.store, principal.username or ""):
        return render("mfa.html", enrolled=True, home=destination(runtime, principal),
                      viewer=viewer_of(identification))
    return _enrolment_page(runtime, principal, identification.csrf_token, "")


def mfa_confirm(runtime: Runtime, request: Request) -> Response:
    identification, form = _session_form(runtime, request)
    principal = identification.principal
    try:
        codes = mfa.confirm(runtime.store, runtime.mfa, runtime.audit_now, principal, form.get("code", ""),
                            runtime.clock(), request.ip)
    except BadRequest as exc:
        if request.wants_json:
            raise
        return _enrolment_page(runtime, principal, identification.csrf_token, exc.message)
    runtime.authenticator.invalidate(("session", principal.session_id))
    if request.wants_json:
        return Response.json({"enrolled": True, "recovery_codes": codes})
    return render("mfa.html", enrolled=True, recovery_codes=codes, viewer=viewer_of(identification),
                  home=destination(runtime, dataclasses.replace(principal, mfa_pending=False)))


def _session_form(runtime: Runtime, request: Request) -> tuple[Identification, dict[str, str]]:
    """A form posted by a signed-in browser: its session and fields, once the CSRF token checks out."""
    identification = identified(runtime, request)
    if identification.principal.via != "session":
        raise Unauthenticated("Sign in first")
    form = request.form()
    if not csrf_ok("POST", "session", request.headers, identification.csrf_token, form.get("csrf_token")):
        raise BadRequest("The form is stale or came from another site; reload the page")
    return identification, form


def _enrolment_page(runtime: Runtime, principal: Principal, csrf_token: str | None, error: str) -> Response:
    enrolment = mfa.begin(runtime.store, runtime.mfa, principal)
    # The SVG is made by segno from our own otpauth URI, not from anything the user typed.
    return render("mfa.html", enrolled=False, qr_svg=Markup(enrolment.qr_svg), secret=enrolment.secret,  # noqa: S704
                  csrf_token=csrf_token, error=error,
                  viewer={"username": principal.username or "", "csrf_token": csrf_token or ""})


def set_password_page(runtime: Runtime, request: Request, token: str) -> Response:
    """The welcome e-mail's link: a form to choose a password, while the link is usable."""
    try:
        link = password_links.check(runtime.store, token, runtime.clock())
    except password_links.LinkUnusable as exc:
        return _link_gone(exc)
    return _link_form(token, link.username, "")


def set_password(runtime: Runtime, request: Request, token: str) -> Response:
    """The form posted: the two passwords must match and follow the password rule; the link is spent.
    There is no session to hold a CSRF token: a post that names another site is refused, as at
    sign-in. (`Origin: null` is what this page's no-referrer policy makes a browser send; a forger
    would need the link's secret, with which they could set the password themselves.)"""
    if _names_another_site(request.headers):
        raise BadRequest("A password set from another site is refused")
    form = request.form()
    new, confirm = form.get("new", ""), form.get("confirm", "")
    now = runtime.clock()
    try:
        link = password_links.check(runtime.store, token, now)
        if new != confirm:
            return _link_form(token, link.username, "The two passwords differ; type the same one twice.")
        password_links.redeem(runtime.store, runtime.audit_now, token, new, now, request.ip)
    except password_links.LinkUnusable as exc:
        return _link_gone(exc)
    except BadRequest as exc:
        return _link_form(token, link.username, exc.message)
    runtime.authenticator.invalidate()  # the account's sessions ended; forget what was cached of them
    return render("password_set.html", headers=LINK_HEADERS, username=link.username)


def _link_form(token: str, username: str, error: str) -> Response:
    """The form, again with its message after a mistake: 200, as the sign-in page does. From Orthanc
    1.12.2 an error status's body goes as text/plain (orthanc_api.send): the form would be gone."""
    return render("set_password.html", 200, LINK_HEADERS, token=token, username=username, error=error,
                  min_length=accounts.MIN_PASSWORD_LENGTH, rules=PASSWORD_RULES)


def _link_gone(exc: password_links.LinkUnusable) -> Response:
    return render("password_link_gone.html", exc.status, LINK_HEADERS, message=exc.message)


def _names_another_site(headers: dict[str, str]) -> bool:
    host = headers.get("host", "")
    return any(value and value != "null" and not same_origin({"host": host, "origin": value})
               for value in (headers.get("origin"), headers.get("referer")))


def static(runtime: Runtime, request: Request, name: str) -> Response:
    if not STATIC_NAME.match(name) or not (STATIC_DIR / name).is_file():
        return Response.json({"error": "not_found", "message": "No such file"}, 404)
    body = (STATIC_DIR / name).read_bytes()
    return Response(200, body, STATIC_TYPES[name.rsplit(".", 1)[1]], {"Cache-Control": "max-age=3600"})

"""Patient share links: the practice's JSON API (/gate/api/shares) and the patient's pages (/share/...).

The pages speak English, Afrikaans or isiZulu (the share's language, or the one chosen on the page),
send no referrer, and answer every wrong link with the same 404 page.
"""

from __future__ import annotations

import hmac
import math
from types import SimpleNamespace
from typing import Any

from plugin import i18n
from plugin.errors import BadRequest
from plugin.handlers.http import Request, Response, record_id
from plugin.handlers.shared import caller_identification, json_object, require_csrf
from plugin.policies.shares import PAGE_WORDS, ShareInvalid, explorer_share_request
from plugin.policies.types import Principal
from plugin.services.runtime import Runtime
from plugin.services.share_visits import (
    SESSION_COOKIE,
    TICKET_COOKIE,
    Opened,
    SessionOver,
    ShareGone,
    ShareThrottled,
    ShareUnknown,
    Visit,
)

# The share pages' own headers (besides handlers/http.py's): no referrer ever leaves them (the token
# is in the landing page's address), and no search engine keeps them.
SHARE_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}
VIEW_PAGE = "/share/view"


# -- the practice's API ---------------------------------------------------------------------------

def shares_collection(runtime: Runtime, request: Request) -> Response:
    """GET: the caller's shares (an admin's: all). POST: a new share (201, with its token once)."""
    principal = _caller(runtime, request)
    if request.method == "GET":
        return Response.json(runtime.shares.list(principal, request.query, runtime.clock()))
    created = runtime.shares.create(principal, json_object(request), runtime.clock(), request.ip)
    return Response.json(created, 201)


def share_resource(runtime: Runtime, request: Request, share_id: str) -> Response:
    """GET: the share and its usage. DELETE: revoke it (its open viewing sessions end at once)."""
    principal = _caller(runtime, request)
    number = record_id(share_id, "share")
    if request.method == "GET":
        return Response.json(runtime.shares.get(principal, number, runtime.clock()))
    return Response.json(runtime.shares.revoke(principal, number, runtime.clock(), request.ip))


def explorer_share(runtime: Runtime, request: Request, _token_type: str) -> Response:
    """Orthanc Explorer 2's Share button: one of our share links (revocable, expiring, audited) for
    the studies it names, made as the signed-in caller, as `{"Token", "Url"}` (the answer OE2 shows)."""
    principal = _caller(runtime, request)
    try:
        wanted = explorer_share_request(json_object(request))
    except ShareInvalid as exc:
        raise BadRequest(str(exc)) from None
    created = runtime.shares.create(principal, wanted, runtime.clock(), request.ip)
    return Response.json({"Token": created["token"], "Url": created["url"]})


def _caller(runtime: Runtime, request: Request) -> Principal:
    """Any signed-in user (what they may do is the service's question); a change relying on the
    session cookie must pass the CSRF check."""
    identification = caller_identification(runtime, request)
    require_csrf(request, identification)
    return identification.principal


# -- the patient's pages --------------------------------------------------------------------------

def link(runtime: Runtime, request: Request, token: str) -> Response:
    """GET: the landing page (nothing counted). POST: the password, then the viewing session."""
    visits = runtime.share_visits
    chosen = request.query.get("lang") if request.method == "GET" else None
    if token in PAGE_WORDS:
        # A session page's address asked the wrong way (/share/report, say): no link, and no wrong
        # link counted against the address either.
        return _page(runtime, i18n.language_or_default(chosen), "share/not_found.html", 404)
    wanted = None
    try:
        if request.method == "GET":
            landing = visits.landing(token, request.ip, request.path)
            lang = i18n.language_or_default(chosen or landing.share.language)
            return _landing(runtime, lang, landing.share, landing.study_count)
        form = request.form()
        wanted = form.get("lang")  # the landing form's language; none: the share's
        opened = visits.open(token, form.get("password", ""), wanted, request.ip, request.path)
    except (ShareUnknown, ShareGone, ShareThrottled) as exc:
        return _refusal(runtime, exc, chosen or wanted)
    if isinstance(opened, Opened):
        return Response.redirect(VIEW_PAGE, {**SHARE_HEADERS, "Set-Cookie": _session_cookie(runtime, opened)})
    landing = opened.landing or visits.landing(token, request.ip, request.path)
    lang = i18n.language_or_default(wanted or landing.share.language)
    error = "locked" if opened.locked else "wrong_password"
    # The form again with its message, as 200: from Orthanc 1.12.2 an error status's body is sent as
    # text/plain (orthanc_api.send), which would take the form away from a patient who mistyped.
    status = 403 if opened.locked else 200
    headers = {"Retry-After": str(math.ceil(opened.retry_after))} if opened.locked else {}
    return _landing(runtime, lang, landing.share, landing.study_count, error, opened.retry_after, status, headers)


def view(runtime: Runtime, request: Request) -> Response:
    """The shared studies: previews, the download, the report, the access log when turned on."""
    lang = request.query.get("lang")
    visit = _visit(runtime, request, i18n.language_or_default(lang) if lang else None)
    if isinstance(visit, Response):
        return visit
    visits = runtime.share_visits
    cards = visits.studies(visit, request.ip, request.path)
    share = visit.share
    studies = [SimpleNamespace(
        date=i18n.dicom_day(card.study_date, visit.language), modalities=", ".join(card.modalities),
        description=card.description,
        previews=[SimpleNamespace(url=f"/share/preview/{instance}", alt=_preview_alt(n, visit.language))
                  for n, instance in enumerate(card.previews, 1)],
        report_url=f"/share/report/{card.orthanc_id}" if card.has_report else None) for card in cards]
    left = None if share.max_downloads is None else max(0, share.max_downloads - share.downloads)
    entries = visits.access_log(visit)
    log = None if entries is None else [SimpleNamespace(when=i18n.moment(e.at, visit.language), role=e.role,
                                                        name=e.name, practice=e.practice, what=e.what)
                                        for e in entries]
    return _page(runtime, visit.language, "share/studies.html", 200, expires=i18n.moment(share.expires_at,
                                                                                        visit.language),
                 downloads_left=left, can_download=left is None or left > 0, csrf_token=visit.csrf_token,
                 download_error=None, studies=studies, access_log=log)


def preview(runtime: Runtime, request: Request, instance_oid: str) -> Response:
    visit = _visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    try:
        image, content_type = runtime.share_visits.preview(visit, instance_oid, request.ip, request.path)
    except ShareUnknown:
        return Response(404, b"", headers=SHARE_HEADERS)
    return Response(200, image, content_type, dict(SHARE_HEADERS))


def report(runtime: Runtime, request: Request, study_oid: str) -> Response:
    visit = _visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    try:
        pdf = runtime.share_visits.report(visit, study_oid, request.ip, request.path)
    except ShareUnknown:
        return _page(runtime, visit.language, "share/not_found.html", 404)
    return Response(200, pdf, "application/pdf",
                    {**SHARE_HEADERS, "Content-Disposition": 'inline; filename="report.pdf"'})


def download(runtime: Runtime, request: Request) -> Response:
    """One counted download: to the core's archive route with a single-use ticket, which Orthanc
    streams (or, where it cannot, the ZIP itself)."""
    visit = _visit(runtime, request, checked_form=True)
    if isinstance(visit, Response):
        return visit
    try:
        started = runtime.share_visits.download(visit, request.ip, request.path)
    except ShareGone as exc:
        return _refusal(runtime, exc, visit.language)
    if started.archive is not None:
        return Response(200, started.archive, "application/zip",
                        {**SHARE_HEADERS, "Content-Disposition": 'attachment; filename="images.zip"'})
    path = (started.target or "").split("?", 1)[0]
    cookie = f"{TICKET_COOKIE}={started.ticket}; Path={path}; Max-Age=60; HttpOnly; SameSite=Strict"
    return Response.redirect(started.target or VIEW_PAGE,
                             {**SHARE_HEADERS, "Set-Cookie": cookie + ("; Secure" if runtime.config.secure_cookies
                                                                       else "")})


def close(runtime: Runtime, request: Request) -> Response:
    visit = _visit(runtime, request, checked_form=True)
    if isinstance(visit, Response):
        return visit
    runtime.share_visits.close(visit)
    ended = f"{SESSION_COOKIE}=; Path=/share/; Max-Age=0; HttpOnly; SameSite=Strict"
    return _page(runtime, visit.language, "share/closed.html", 200, {"Set-Cookie": ended})


def not_found(runtime: Runtime, request: Request, *_rest: str) -> Response:
    """Any other address under /share/: the one "not a valid link" page."""
    return _page(runtime, i18n.language_or_default(request.query.get("lang")), "share/not_found.html", 404)


# -- steps ----------------------------------------------------------------------------------------

def _visit(runtime: Runtime, request: Request, language: str | None = None,
           checked_form: bool = False) -> Visit | Response:
    """The browser's viewing session, or the page that says why there is none (ended: 403; its
    share stopped: 410). A form post must carry the session's CSRF token."""
    try:
        visit = runtime.share_visits.visit(request.headers.get("cookie", ""), language)
    except SessionOver:
        return _page(runtime, i18n.language_or_default(request.query.get("lang")), "share/ended.html", 403)
    except ShareGone as exc:
        return _refusal(runtime, exc, request.query.get("lang"))
    if checked_form:
        presented = request.form().get("csrf_token", "")
        if not presented or not hmac.compare_digest(presented.encode(), visit.csrf_token.encode()):
            return _page(runtime, visit.language, "share/ended.html", 403)
    return visit


def _landing(runtime: Runtime, lang: str, share: Any, study_count: int, error: str | None = None,
             retry_after: float = 0.0, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    left = None if share.max_downloads is None else max(0, share.max_downloads - share.downloads)
    return _page(runtime, lang, "share/landing.html", status, headers, expires=i18n.moment(share.expires_at, lang),
                 study_count=study_count, needs_password=share.password_hash is not None, one_time=share.one_time,
                 downloads_left=left, error=error, retry_minutes=max(1, math.ceil(retry_after / 60)), form_lang=lang)


def _refusal(runtime: Runtime, exc: Exception, lang: str | None) -> Response:
    code = i18n.language_or_default(lang)
    if isinstance(exc, ShareGone):
        return _page(runtime, code, "share/gone.html", 410, reason=exc.reason.value)
    if isinstance(exc, ShareThrottled):
        return _page(runtime, code, "share/throttled.html", 403, {"Retry-After": str(math.ceil(exc.retry_after))},
                     retry_minutes=max(1, math.ceil(exc.retry_after / 60)))
    return _page(runtime, code, "share/not_found.html", 404)


def _page(runtime: Runtime, lang: str, template: str, status: int, headers: dict[str, str] | None = None,
          **context: Any) -> Response:
    settings = runtime.config.shares
    practice = SimpleNamespace(name=runtime.config.practice_name, phone=settings.contact_phone,
                               email=settings.contact_email, address=settings.contact_address)
    html = i18n.environment(lang).get_template(template).render(lang=lang, lang_switch=True, practice=practice,
                                                                **context)
    return Response.html(html, status, {**SHARE_HEADERS, **(headers or {})})


def _session_cookie(runtime: Runtime, opened: Opened) -> str:
    secure = "; Secure" if runtime.config.secure_cookies else ""
    return (f"{SESSION_COOKIE}={opened.cookie}; Path=/share/; Max-Age={opened.max_age}; HttpOnly; "
            f"SameSite=Strict{secure}")


def _preview_alt(number: int, lang: str) -> str:
    _ = i18n.gettext_for(lang)
    return _("Image %(number)s of the study") % {"number": number}


"""The doctor dashboard (`/gate/doctor`) and the PDF report of a study it lists."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from plugin.errors import BadRequest, Forbidden
from plugin.handlers import ohif
from plugin.handlers.http import Request, Response
from plugin.handlers.shared import caller_identification, page_identification, render, viewer_of
from plugin.i18n import LANGUAGES
from plugin.identity.authenticate import Identification
from plugin.policies.csrf import csrf_ok
from plugin.policies.dashboard import MODALITIES, iso_day, read_search
from plugin.services.dashboard import DashboardService
from plugin.services.runtime import Runtime

EXPLORER_PAGE = "/app/explorer.html"
WEB_VIEWER_PAGE = "/web-viewer/app/viewer.html"


@dataclass(frozen=True)
class Viewers:
    """The viewers this server has, which the dashboard links to."""

    explorer: bool
    web_viewer: bool
    ohif: bool


def doctor_page(runtime: Runtime, request: Request) -> Response:
    visitor = _visitor(runtime, request)
    if isinstance(visitor, Response):
        return visitor
    principal = visitor.principal
    wanted = read_search(request.query)
    board = _service(runtime).view(principal, wanted, runtime.clock(), request.ip)
    last_visit = time.strftime("%Y-%m-%d %H:%M", time.localtime(board.previous_visit_at)) \
        if board.previous_visit_at else ""
    return render("doctor.html", 400 if wanted.problem else 200, board=board, search=wanted, principal=principal,
                  csrf_token=visitor.csrf_token if principal.via == "session" else None, viewer=viewer_of(visitor),
                  last_visit=last_visit,
                  viewers=_viewers(runtime), modalities=MODALITIES, iso_day=iso_day)


def report(runtime: Runtime, request: Request, study_id: str) -> Response:
    """The study's PDF report, shown in the browser (404 for a study that is not the caller's)."""
    visitor = _visitor(runtime, request)
    if isinstance(visitor, Response):
        return visitor
    found = _service(runtime).report(visitor.principal, study_id, runtime.clock(), request.ip, request.path)
    return Response(200, found.content, "application/pdf", {"Content-Disposition": 'inline; filename="report.pdf"'})


def _visitor(runtime: Runtime, request: Request) -> Identification | Response:
    """A browser is sent to sign in and back (or to what signing in still owes); any other caller
    gets the API's answers (401 with a challenge, 403 while something is owed)."""
    if "text/html" in request.headers.get("accept", ""):
        return page_identification(runtime, request)
    return caller_identification(runtime, request)


def _service(runtime: Runtime) -> DashboardService:
    return DashboardService(runtime.store, runtime.core, runtime.access, runtime.search, runtime.audit_now,
                            runtime.audit_refusal)


def _viewers(runtime: Runtime) -> Viewers:
    found = runtime.ui_pages.found
    return Viewers(EXPLORER_PAGE in found, WEB_VIEWER_PAGE in found, (ohif.APP_DIR / ohif.INDEX).is_file())


# The choices the dashboard's share form offers for how long a link lasts (hours), within MaxValidHours.
SHARE_HOURS = (24, 72, 168, 336, 720)


def share_study(runtime: Runtime, request: Request, study_id: str) -> Response:
    """GET: the form that makes a patient's share link for one study (holders of `share` on it, and
    admins). POST: the link made (its token shown this once, and sent if asked)."""
    visitor = _visitor(runtime, request)
    if isinstance(visitor, Response):
        return visitor
    principal = visitor.principal
    found = runtime.shares.shareable(principal, study_id, runtime.clock())  # 404 / 403 as the API answers
    study = _service(runtime).card(principal, found.study_oid or "", runtime.clock())
    hours = [h for h in SHARE_HOURS if h <= runtime.config.shares.max_valid_hours]
    if request.method == "GET":
        return _share_form(visitor, study, hours, {}, "")
    form = request.form()
    if principal.via != "session" or not csrf_ok("POST", "session", request.headers, visitor.csrf_token,
                                                 form.get("csrf_token")):
        raise Forbidden("Cross-site request refused")
    try:
        created = runtime.shares.create(principal, share_request(form, study.orthanc_id), runtime.clock(), request.ip)
    except BadRequest as exc:
        return _share_form(visitor, study, hours, form, exc.message)
    return render("share_created.html", 200, principal=principal, study=study, share=created,
                  csrf_token=visitor.csrf_token, viewer=viewer_of(visitor))


def share_request(form: dict[str, str], study_oid: str) -> dict[str, Any]:
    """The share form's fields as the API's create request."""
    data: dict[str, Any] = {"studies": [study_oid], "language": form.get("language", "en"),
                            "one_time": form.get("one_time") == "on"}
    try:
        data["valid_hours"] = float(form.get("valid_hours", ""))
    except ValueError:
        raise BadRequest('"valid_hours" must be one of the offered choices') from None
    if form.get("password"):
        data["password"] = form["password"]
    if form.get("max_downloads", "").strip():
        try:
            data["max_downloads"] = int(form["max_downloads"])
        except ValueError:
            raise BadRequest('"max_downloads" must be a whole number') from None
    recipient = {key: form[key].strip() for key in ("email", "mobile") if form.get(key, "").strip()}
    if recipient:
        data["recipient"] = recipient
        data["notify"] = form.get("send", "on") == "on"
    if form.get("consent"):
        data["consent"] = {"method": form["consent"], "note": form.get("consent_note", "")}
    return data


def _share_form(visitor: Identification, study: Any, hours: list[int], form: dict[str, str],
                error: str) -> Response:
    """The form (again with its message after a mistake: 200, so that Orthanc 1.12.2+, which sends an
    error status's body as text/plain, still shows it as a form)."""
    return render("share_form.html", 200, principal=visitor.principal, study=study, hours=hours, form=form,
                  error=error, csrf_token=visitor.csrf_token, languages=LANGUAGES, viewer=viewer_of(visitor))

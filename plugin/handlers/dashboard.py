"""The doctor dashboard (`/gate/doctor`) and the PDF report of a study it lists."""

from __future__ import annotations

import time
from dataclasses import dataclass

from plugin.handlers import ohif
from plugin.handlers.api import caller_identification
from plugin.handlers.http import Request, Response
from plugin.handlers.pages import page_identification, render
from plugin.identity.authenticate import Identification
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
                  csrf_token=visitor.csrf_token if principal.via == "session" else None, last_visit=last_visit,
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

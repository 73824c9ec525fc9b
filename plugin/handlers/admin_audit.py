"""The admin console's audit pages: search (with its CSV export), a patient's access report
(POPIA section 23, printable), the patients an account saw (section 22) and the chain's proof.
The same reads as the JSON API's (services/audit_reports.py), and as audited."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from plugin.audit.verify import verify_store
from plugin.errors import GateError
from plugin.handlers.http import Request, Response
from plugin.handlers.shared import ConsoleVisit, console_page, console_visit
from plugin.services import audit_reports
from plugin.services.runtime import Runtime, checkpoint_file


def audit_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    given = {name: request.query.get(name, "") for name in audit_reports.FILTERS}
    try:
        query = audit_reports.parse_query({k: v for k, v in request.query.items() if v})
        limit, before = audit_reports.page_limits(request.query)
        audit_reports.looked(runtime.audit_now, visit.actor, runtime.clock(), "audit.search", query)
        found = audit_reports.search(runtime.store, query, limit, before)
    except GateError as exc:
        return _page(runtime, request, visit, "admin/audit.html", given=given, found=None, error=exc.message,
                     status=exc.status)
    filters = urlencode({k: v for k, v in given.items() if v})
    return _page(runtime, request, visit, "admin/audit.html", given=given, found=found, error="", filters=filters,
                 events=[_shown(e) for e in found["events"]], json=found)


def patient_report_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    given = {name: request.query.get(name, "") for name in ("patient_id", "from", "to")}
    report, error = None, ""
    if given["patient_id"]:
        try:
            query = audit_reports.parse_query({k: v for k, v in given.items() if v}, ("patient_id", "from", "to"))
            audit_reports.looked(runtime.audit_now, visit.actor, runtime.clock(), "audit.patient_report", query,
                                 query.patient_id or "")
            report = audit_reports.patient_access_report(runtime.store, query.patient_id or "", query.since,
                                                         query.until)
            report["accesses"] = [_shown(a) for a in report["accesses"]]
        except GateError as exc:
            error = exc.message
    return _page(runtime, request, visit, "admin/patient_report.html", given=given, report=report, error=error,
                 report_query=urlencode({k: v for k, v in given.items() if v}),
                 printed=_shown_time(audit_reports.iso_utc(runtime.clock())), json=report or {})


def breach_report_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    given = {name: request.query.get(name, "") for name in ("user", "from", "to")}
    report, error = None, ""
    if any(given.values()):
        try:
            query = audit_reports.parse_query({k: v for k, v in given.items() if v}, ("user", "from", "to"))
            audit_reports.looked(runtime.audit_now, visit.actor, runtime.clock(), "audit.breach_report", query)
            report = audit_reports.patients_seen(runtime.store, query.user or "", query.since, query.until)
            report["patients"] = [{**p, "first": _shown_time(p["first"]), "last": _shown_time(p["last"])}
                                  for p in report["patients"]]
        except GateError as exc:
            error = exc.message
    return _page(runtime, request, visit, "admin/breach_report.html", given=given, report=report, error=error,
                 printed=_shown_time(audit_reports.iso_utc(runtime.clock())), json=report or {})


def verify_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    report = verify_store(runtime.store, runtime.config.audit_checkpoint_key_file.read_bytes().strip(),
                          checkpoint_file(runtime.config))
    return _page(runtime, request, visit, "admin/audit_verify.html", report=report,
                 json={"ok": report.ok, "rows": report.rows, "checkpoints": report.checkpoints,
                       "problem": report.problem, "bad_row": report.bad_row})


def _page(runtime: Runtime, request: Request, visit: ConsoleVisit, template: str, status: int = 200,
          **context: Any) -> Response:
    return console_page(runtime, request, template, visit, status, section="Audit", zone=_zone_name(), **context)


def _shown(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "shown_ts": _shown_time(event["ts"])}


def _shown_time(ts: str) -> str:
    """An audit timestamp (UTC) in the server's local time, to the second."""
    try:
        moment = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _zone_name() -> str:
    return dt.datetime.now().astimezone().strftime("UTC%z")

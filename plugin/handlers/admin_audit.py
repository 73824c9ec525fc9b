"""The admin console's audit pages: search (with its CSV export), a patient's access report
(POPIA section 23, printable), the patients an account saw (section 22) and the chain's proof.
The same reads as the JSON API's (services/audit_reports.py), and as audited."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from plugin.errors import GateError
from plugin.handlers.http import Request, Response
from plugin.handlers.shared import ConsoleVisit, console_page, console_visit
from plugin.services import audit_reports
from plugin.services.runtime import Runtime, verify_audit


def audit_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    given = {name: request.query.get(name, "") for name in audit_reports.FILTERS}
    try:
        found = audit_reports.searched(runtime.store, runtime.audit_now, visit.actor, runtime.clock(),
                                       {k: v for k, v in request.query.items() if v})
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
    given, report, error = _report(runtime, request, visit, audit_reports.REPORT_FILTERS, "patient_id",
                                   audit_reports.patient_report)
    if report is not None:
        report["accesses"] = [_shown(a) for a in report["accesses"]]
    return _page(runtime, request, visit, "admin/patient_report.html", given=given, report=report, error=error,
                 report_query=urlencode({k: v for k, v in given.items() if v}),
                 printed=_shown_time(audit_reports.iso_utc(runtime.clock())), json=report or {})


def breach_report_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    given, report, error = _report(runtime, request, visit, audit_reports.BREACH_FILTERS, None,
                                   audit_reports.breach_report)
    if report is not None:
        report["patients"] = [{**p, "first": _shown_time(p["first"]), "last": _shown_time(p["last"])}
                              for p in report["patients"]]
    return _page(runtime, request, visit, "admin/breach_report.html", given=given, report=report, error=error,
                 printed=_shown_time(audit_reports.iso_utc(runtime.clock())), json=report or {})


def verify_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    report = verify_audit(runtime.config, runtime.store)
    return _page(runtime, request, visit, "admin/audit_verify.html", report=report, json=dataclasses.asdict(report))


def _report(runtime: Runtime, request: Request, visit: ConsoleVisit, fields: tuple[str, ...], needed: str | None,
            read: Callable[..., dict[str, Any]]) -> tuple[dict[str, str], dict[str, Any] | None, str]:
    """A report's form as given, the report once the form is filled in (`needed`, else any field), or
    why it cannot be made."""
    given = {name: request.query.get(name, "") for name in fields}
    if not (given[needed] if needed else any(given.values())):
        return given, None, ""
    try:
        return given, read(runtime.store, runtime.audit_now, visit.actor, runtime.clock(),
                           {k: v for k, v in given.items() if v}), ""
    except GateError as exc:
        return given, None, exc.message


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

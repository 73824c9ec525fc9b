"""JSON API for admins over the audit: /gate/api/audit (search, paged), its CSV export, the chain's
proof, a patient's access report and the patients an account saw (services/audit_reports.py)."""

from __future__ import annotations

import dataclasses

from plugin.audit.verify import verify_store
from plugin.handlers.http import Request, Response
from plugin.handlers.shared import admin_actor
from plugin.services import audit_reports
from plugin.services.runtime import Runtime, checkpoint_file

REPORT_FILTERS = ("from", "to", "patient_id")
BREACH_FILTERS = ("from", "to", "user")


def search(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    query = audit_reports.parse_query(request.query)
    limit, before = audit_reports.page_limits(request.query)
    audit_reports.looked(runtime.audit_now, actor, runtime.clock(), "audit.search", query)
    return Response.json(audit_reports.search(runtime.store, query, limit, before))


def export_csv(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    query = audit_reports.parse_query(request.query, audit_reports.FILTERS)
    body = audit_reports.export_csv(runtime.store, query)
    audit_reports.looked(runtime.audit_now, actor, runtime.clock(), "audit.export", query)
    return Response(200, body, "text/csv; charset=utf-8",
                    {"Content-Disposition": 'attachment; filename="orthanc-gate-audit.csv"'})


def verify(runtime: Runtime, request: Request) -> Response:
    admin_actor(runtime, request)
    report = verify_store(runtime.store, runtime.config.audit_checkpoint_key_file.read_bytes().strip(),
                          checkpoint_file(runtime.config))
    return Response.json(dataclasses.asdict(report))


def patient_report(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    query = audit_reports.parse_query(request.query, REPORT_FILTERS)
    report = audit_reports.patient_access_report(runtime.store, query.patient_id or "", query.since, query.until)
    audit_reports.looked(runtime.audit_now, actor, runtime.clock(), "audit.patient_report", query,
                         query.patient_id or "")
    return Response.json(report)


def breach_report(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    query = audit_reports.parse_query(request.query, BREACH_FILTERS)
    report = audit_reports.patients_seen(runtime.store, query.user or "", query.since, query.until)
    audit_reports.looked(runtime.audit_now, actor, runtime.clock(), "audit.breach_report", query)
    return Response.json(report)

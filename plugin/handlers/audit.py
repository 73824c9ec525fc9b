"""JSON API for admins over the audit: /gate/api/audit (search, paged), its CSV export, the chain's
proof, a patient's access report and the patients an account saw (services/audit_reports.py)."""

from __future__ import annotations

import dataclasses

from plugin.handlers.http import Request, Response
from plugin.handlers.shared import admin_actor
from plugin.services import audit_reports
from plugin.services.runtime import Runtime, verify_audit


def search(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    return Response.json(audit_reports.searched(runtime.store, runtime.audit_now, actor, runtime.clock(),
                                                request.query))


def export_csv(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    body = audit_reports.exported(runtime.store, runtime.audit_now, actor, runtime.clock(), request.query)
    return Response(200, body, "text/csv; charset=utf-8",
                    {"Content-Disposition": 'attachment; filename="orthanc-gate-audit.csv"'})


def verify(runtime: Runtime, request: Request) -> Response:
    admin_actor(runtime, request)
    return Response.json(dataclasses.asdict(verify_audit(runtime.config, runtime.store)))


def patient_report(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    return Response.json(audit_reports.patient_report(runtime.store, runtime.audit_now, actor, runtime.clock(),
                                                      request.query))


def breach_report(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    return Response.json(audit_reports.breach_report(runtime.store, runtime.audit_now, actor, runtime.clock(),
                                                     request.query))

"""JSON API for admins: /gate/api/grants (one, bulk), /gate/api/grants/{id} and /gate/api/check."""

from __future__ import annotations

from plugin.handlers.http import Request, Response, record_id
from plugin.handlers.shared import admin_actor, caller, json_object
from plugin.services.runtime import Runtime


def grants_collection(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    if request.method == "GET":
        return Response.json({"grants": runtime.grants.list(request.query)})
    created = runtime.grants.create(actor, runtime.clock(), json_object(request))
    return Response.json(created, 201)


def grants_bulk(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    created = runtime.grants.bulk(actor, runtime.clock(), json_object(request))
    return Response.json({"created": len(created), "grants": created}, 201)


def grant_resource(runtime: Runtime, request: Request, grant_id: str) -> Response:
    actor = admin_actor(runtime, request)
    revoked = runtime.grants.revoke(actor, runtime.clock(), record_id(grant_id, "grant"))
    return Response.json({"revoked": True, "grant": revoked})


def check(runtime: Runtime, request: Request) -> Response:
    """Admins check anyone; a signed-in user may check themselves."""
    principal = caller(runtime, request)
    return Response.json(runtime.grants.check(principal, runtime.clock(), request.query))

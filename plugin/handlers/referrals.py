"""JSON API for admins: /gate/api/referrals (what arrival decided) and /gate/api/review (what it left
to a person, and the decision)."""

from __future__ import annotations

from plugin.handlers.http import Request, Response, record_id
from plugin.handlers.shared import admin_actor, json_object
from plugin.services.runtime import Runtime


def referrals(runtime: Runtime, request: Request) -> Response:
    admin_actor(runtime, request)
    return Response.json({"referrals": runtime.review.referrals(request.query)})


def review_items(runtime: Runtime, request: Request) -> Response:
    admin_actor(runtime, request)
    return Response.json({"items": runtime.review.items(request.query)})


def resolve(runtime: Runtime, request: Request, item_id: str) -> Response:
    actor = admin_actor(runtime, request)
    return Response.json(runtime.review.resolve(actor, runtime.clock(), record_id(item_id, "review item"),
                                                json_object(request)))

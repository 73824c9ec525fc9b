"""JSON API for admins: /gate/api/outbox, the messages queued, sent and given up, and their retry."""

from __future__ import annotations

from plugin.handlers.http import Request, Response, record_id
from plugin.handlers.shared import admin_actor
from plugin.services import outbox
from plugin.services.runtime import Runtime


def list_messages(runtime: Runtime, request: Request) -> Response:
    admin_actor(runtime, request)
    found = outbox.list_outbox(runtime.store, runtime.outbox.cipher, request.query.get("status"),
                               request.query.get("offset"), request.query.get("limit"))
    return Response.json({"messages": found})


def retry(runtime: Runtime, request: Request, message_id: str) -> Response:
    actor = admin_actor(runtime, request)
    retried = outbox.retry_message(runtime.store, runtime.audit_now, actor, runtime.clock(),
                                   record_id(message_id, "message"))
    runtime.outbox.wake()
    return Response.json(retried)

"""JSON API for admins: /gate/api/users (and its CSV import) and /gate/api/api-keys.

Orthanc 1.10 answers PATCH with 400 before any plugin sees it, so a partial change of a user is
sent as PUT /gate/api/users/{username}: the fields given change, the others stay. Nor does it hand
a POST's query string to plugins, so an import's dry run is asked for with the header
`X-Dry-Run: 1` (`?dry_run=1` is honoured too, where the server passes it on).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from plugin.errors import BadRequest
from plugin.handlers.http import Request, Response, record_id
from plugin.handlers.shared import admin_actor, json_object
from plugin.services import users
from plugin.services.runtime import Runtime
from plugin.services.user_import import BadCsv, decode_csv

DRY_RUN_VALUES = ("1", "true", "yes")


def users_collection(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    if request.method == "GET":
        return Response.json({"users": users.list_users(runtime.store)})
    data = json_object(request)
    created = users.create_user(runtime.store, runtime.audit_now, runtime.mfa, _with_otp(actor, data),
                                runtime.clock(), data)
    return Response.json(created, 201)


def user_resource(runtime: Runtime, request: Request, username: str) -> Response:
    actor = admin_actor(runtime, request)
    if request.method == "GET":
        return Response.json(users.get_user(runtime.store, username))
    if request.method == "DELETE":
        users.disable_user(runtime.store, runtime.audit_now, actor, runtime.clock(), username)
        runtime.authenticator.invalidate()
        return Response.json({"disabled": True})
    data = json_object(request)
    changed = users.update_user(runtime.store, runtime.audit_now, runtime.mfa, _with_otp(actor, data),
                                runtime.clock(), username, data)
    runtime.authenticator.invalidate()  # new roles, password or state count at once on this node
    return Response.json(changed)


def user_sessions(runtime: Runtime, request: Request, username: str) -> Response:
    """DELETE: sign the user out everywhere, at once on this node (IdentityCacheSeconds elsewhere)."""
    actor = admin_actor(runtime, request)
    users.sign_out_everywhere(runtime.store, runtime.audit_now, actor, runtime.clock(), username)
    runtime.authenticator.invalidate()
    return Response.json({"signed_out": True})


def user_unlock(runtime: Runtime, request: Request, username: str) -> Response:
    """POST: lift the account's sign-in lockout (an admin's password reset lifts it too)."""
    actor = admin_actor(runtime, request)
    was_locked = users.unlock_user(runtime.store, runtime.audit_now, actor, runtime.clock(), username)
    return Response.json({"username": username, "was_locked": was_locked})


def user_mfa_reset(runtime: Runtime, request: Request, username: str) -> Response:
    """POST: forget the account's authenticator (it enrols again); needs a fresh code ("otp")."""
    actor = admin_actor(runtime, request)
    data = json_object(request) if request.body else {}
    users.reset_mfa(runtime.store, runtime.audit_now, runtime.mfa, _with_otp(actor, data), runtime.clock(), username)
    runtime.authenticator.invalidate()
    return Response.json({"username": username, "mfa_reset": True})


def import_users(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "text/csv":
        raise BadRequest("Send the CSV file as the body, with Content-Type: text/csv")
    dry_run = (request.query.get("dry_run") or request.headers.get("x-dry-run", "")).lower() in DRY_RUN_VALUES
    try:
        count = users.import_users(runtime.store, runtime.audit_now, actor, runtime.clock(),
                                   decode_csv(request.body), dry_run)
    except BadCsv as exc:
        return Response.json({"error": exc.code, "message": exc.message, "rows": exc.rows()}, exc.status)
    if dry_run:
        return Response.json({"imported": 0, "would_import": count, "dry_run": True})
    return Response.json({"imported": count, "dry_run": False})


def api_keys(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    data = json_object(request)
    created = users.create_api_key(runtime.store, runtime.audit_now, runtime.mfa, _with_otp(actor, data),
                                   runtime.clock(), data)
    return Response.json(created, 201)


def api_key(runtime: Runtime, request: Request, key_id: str) -> Response:
    actor = admin_actor(runtime, request)
    users.revoke_api_key(runtime.store, runtime.audit_now, actor, runtime.clock(), record_id(key_id, "API key"))
    runtime.authenticator.invalidate()  # the key stops working at once on this node
    return Response.json({"revoked": True, "id": record_id(key_id, "API key")})


def _with_otp(actor: users.Actor, data: dict[str, Any]) -> users.Actor:
    otp = data.get(users.OTP_FIELD, "")
    return dataclasses.replace(actor, otp=otp if isinstance(otp, str) else "")

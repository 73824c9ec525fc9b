"""JSON API for admins: /gate/api/doctors, the doctors registry.

A partial change is sent as PUT /gate/api/doctors/{id}, as for users (Orthanc refuses PATCH).
"""

from __future__ import annotations

from plugin.errors import BadRequest
from plugin.handlers.http import Request, Response, record_id
from plugin.handlers.shared import admin_actor, forget_who_sees_what, json_object
from plugin.services import doctors
from plugin.services.runtime import Runtime


def doctors_collection(runtime: Runtime, request: Request) -> Response:
    actor = admin_actor(runtime, request)
    if request.method == "GET":
        found = doctors.list_doctors(runtime.store, request.query.get("q", ""), request.query.get("offset"),
                                     request.query.get("limit"))
        return Response.json({"doctors": found})
    created = doctors.create_doctor(runtime.store, runtime.audit_now, actor, runtime.clock(),
                                    runtime.config.hpcsa_prefixes, json_object(request),
                                    welcome=runtime.notifications.welcome)
    runtime.outbox.wake()
    return Response.json(created, 201)


def doctor_resource(runtime: Runtime, request: Request, doctor_id: str) -> Response:
    actor = admin_actor(runtime, request)
    number = record_id(doctor_id, "doctor")
    if request.method == "GET":
        return Response.json(doctors.get_doctor(runtime.store, number))
    if request.method == "DELETE":
        deleted = doctors.delete_doctor(runtime.store, runtime.audit_now, actor, runtime.clock(), number)
        forget_who_sees_what(runtime)
        return Response.json(deleted)
    change = doctors.update_doctor(runtime.store, runtime.audit_now, actor, runtime.clock(),
                                   runtime.config.hpcsa_prefixes, number, json_object(request))
    if change.reach_changed:
        forget_who_sees_what(runtime)
    return Response.json(change.doctor)


def doctor_sign_in(runtime: Runtime, request: Request, doctor_id: str) -> Response:
    """POST {"username"}: a login for the doctor, tied to them, with the welcome e-mail's link."""
    actor = admin_actor(runtime, request)
    data = json_object(request)
    created = doctors.create_sign_in(runtime.store, runtime.audit_now, runtime.mfa, actor, runtime.clock(),
                                     record_id(doctor_id, "doctor"), _username(data),
                                     welcome=runtime.notifications.welcome)
    runtime.outbox.wake()
    forget_who_sees_what(runtime)
    return Response.json(created, 201)


def _username(data: dict) -> str:
    unknown = sorted(set(data) - {"username"})
    if unknown or not isinstance(data.get("username"), str):
        raise BadRequest('Send {"username": "..."}: the new login\'s name', "username")
    return data["username"]

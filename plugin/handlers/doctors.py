"""JSON API for admins: /gate/api/doctors, the doctors registry.

A partial change is sent as PUT /gate/api/doctors/{id}, as for users (Orthanc refuses PATCH).
"""

from __future__ import annotations

from plugin.handlers.http import Request, Response, record_id
from plugin.handlers.shared import admin_actor, json_object
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
        _forget_who_sees_what(runtime)
        return Response.json(deleted)
    change = doctors.update_doctor(runtime.store, runtime.audit_now, actor, runtime.clock(),
                                   runtime.config.hpcsa_prefixes, number, json_object(request))
    if change.reach_changed:
        _forget_who_sees_what(runtime)
    return Response.json(change.doctor)


def _forget_who_sees_what(runtime: Runtime) -> None:
    """The doctor's grants reach another login now (or none): count it at once on this node; other
    nodes notice the grant version."""
    runtime.authenticator.invalidate()
    access = getattr(runtime, "access", None)
    if access is not None:
        access.invalidate()

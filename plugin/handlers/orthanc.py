"""Orthanc routes the plugin answers itself so the answer can be trimmed: the resource lists, a
patient (/patients/{id}), /tools/find, /tools/lookup, /tools/count-resources (1.12) and /statistics.

The gate has let the request through (signed in, second factor done); here admins get Orthanc's
own answer and everyone else the trimmed one (services/search.py). Each answer is audited with
what it held.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from plugin.errors import BadRequest, Conflict, Forbidden, GateError
from plugin.handlers.http import Request, Response
from plugin.handlers.orthanc_xml import XML_TYPE, json_to_xml, wants_xml
from plugin.handlers.shared import audit_answer, caller
from plugin.policies.types import Principal
from plugin.services.core import CoreError
from plugin.services.runtime import Runtime
from plugin.services.search import patient_id_in

ORTHANC_JSON = "application/json; charset=utf-8"  # the Content-Type of Orthanc's own JSON answers
SINGULAR = {"patients": "patient", "studies": "study", "series": "series"}
# Options of the resource lists and their /tools/find equivalents (Orthanc Explorer asks `full`).
LIST_OPTIONS = {"expand": "Expand", "full": "Full", "short": "Short"}
# The core's answer to DELETE /patients/{id}, as it writes it (jsoncpp's styled writer), byte for byte.
PATIENT_DELETED = b'{\n   "RemainingAncestor" : null\n}'


class CoreRefused(GateError):
    """Orthanc's core answered an error; pass its status on."""

    code = "orthanc_error"

    def __init__(self, error: CoreError) -> None:
        super().__init__(error.message)
        self.status = error.status


def resource_list(runtime: Runtime, request: Request, plural: str) -> Response:
    """GET /patients|studies|series[?expand&since&limit&...]."""
    principal = caller(runtime, request)
    if principal.is_admin:
        return _passed_on(runtime, principal, request, "resource_list",
                          lambda: runtime.core.get_raw(_with_query(request)))
    since, limit = _paging(request.query)
    # As for Orthanc, an option's presence turns it on, whatever its value.
    options = {find_key: True for arg, find_key in LIST_OPTIONS.items() if arg in request.query}
    if "requestedTags" in request.query:
        options["RequestedTags"] = [t for t in request.query["requestedTags"].split(";") if t]
    return _audited(runtime, principal, request, "resource_list", lambda: runtime.search.listing(
        principal, SINGULAR[plural], options, since, limit, runtime.clock()), SINGULAR[plural])


def patient_resource(runtime: Runtime, request: Request, patient_oid: str) -> Response:
    """GET /patients/{id}: Orthanc's own answer for admins; for others, trimmed (SearchService.patient)."""
    principal = caller(runtime, request)
    if principal.is_admin:
        return _passed_on(runtime, principal, request, "patient", lambda: runtime.core.get_raw(_with_query(request)))
    return _audited(runtime, principal, request, "patient",
                    lambda: runtime.search.patient(principal, patient_oid, _with_query(request), runtime.clock()))


def patient_delete(runtime: Runtime, request: Request, patient_oid: str) -> Response:
    """DELETE /patients/{id}, which the route above takes from the core too. The gate has decided
    and audited it (admins, or a `full` grant on the patient); the core does it, and it is answered
    as the core answers it (a patient has no ancestor left)."""
    try:
        runtime.core.delete(request.path)
    except CoreError as exc:
        raise CoreRefused(exc) from None
    return Response(200, PATIENT_DELETED, ORTHANC_JSON)


def tools_reset(runtime: Runtime, request: Request) -> Response:
    """POST /tools/reset, for admins as Orthanc answers it ({}), then Orthanc restarts with its
    configuration read again. Not by the core's reset: it would load the Python plugin a second
    time into the same process, which fails, and Orthanc would stop for good (orthanc_api.restart)."""
    principal = caller(runtime, request)
    if not principal.is_admin:
        raise Forbidden("Only admins may restart Orthanc")
    restart = runtime.process.restart
    if restart is None:
        raise Conflict("This server cannot be restarted from here")
    restart()
    return Response(200, b"{}", ORTHANC_JSON)


def tools_find(runtime: Runtime, request: Request) -> Response:
    principal = caller(runtime, request)
    if principal.is_admin:
        return _passed_on(runtime, principal, request, "tools_find",
                          lambda: runtime.core.post_raw(request.path, request.body))
    body = _json_body(request)
    if request.path.endswith("count-resources"):
        return _audited(runtime, principal, request, "tools_find", lambda: {"Count": len(
            runtime.search.find(principal, {**body, "Expand": False}, runtime.clock()))})
    return _audited(runtime, principal, request, "tools_find",
                    lambda: runtime.search.find(principal, body, runtime.clock()), str(body.get("Level", "")).lower())


def tools_lookup(runtime: Runtime, request: Request) -> Response:
    principal = caller(runtime, request)
    if principal.is_admin:
        return _passed_on(runtime, principal, request, "tools_lookup",
                          lambda: runtime.core.post_raw(request.path, request.body))
    return _audited(runtime, principal, request, "tools_lookup",
                    lambda: runtime.search.lookup(principal, request.body, runtime.clock()))


def tools_labels(runtime: Runtime, request: Request) -> Response:
    """Every label in use, for admins (the core's answer, on Orthanc 1.12; 1.10 has no labels);
    for others none: labels grant nothing here, and their names can tell of other patients."""
    principal = caller(runtime, request)
    if principal.is_admin:
        return _passed_on(runtime, principal, request, "tools_labels", lambda: runtime.core.get_raw(request.path))
    return Response.json([])


def network_list(runtime: Runtime, request: Request) -> Response:
    """GET /peers or /modalities: Orthanc's list for admins; for anyone else none (an empty object
    when `expand` asks for one), as Orthanc Explorer 2 asks for them whoever signs in."""
    principal = caller(runtime, request)
    if principal.is_admin:
        return _passed_on(runtime, principal, request, request.path.strip("/"),
                          lambda: runtime.core.get_raw(_with_query(request)))
    return Response.json({} if "expand" in request.query else [])


def statistics(runtime: Runtime, request: Request) -> Response:
    principal = caller(runtime, request)
    if principal.is_admin:
        return _passed_on(runtime, principal, request, "statistics", lambda: runtime.core.get_raw(request.path))
    return _audited(runtime, principal, request, "statistics",
                    lambda: runtime.search.statistics(principal, runtime.clock()))


def _audited(runtime: Runtime, principal: Principal, request: Request, family: str, answer,  # noqa: ANN001
             level: str | None = None) -> Response:
    """A trimmed answer; `level` is that of the resources it names (for whose they are)."""
    try:
        data: Any = answer()
    except CoreError as exc:
        raise CoreRefused(exc) from None
    return _answered(runtime, principal, request, family, data,
                     _patients(data) or _located_patients(runtime, level, data))


def _passed_on(runtime: Runtime, principal: Principal, request: Request, family: str,
               answer: Callable[[], bytes]) -> Response:
    """An admin's answer: Orthanc's own bytes, as Orthanc would have sent them (audited all the same)."""
    try:
        raw = answer()
    except CoreError as exc:
        raise CoreRefused(exc) from None
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = None
    return _answered(runtime, principal, request, family, data, _patients(data), raw)


def _answered(runtime: Runtime, principal: Principal, request: Request, family: str, data: Any,
              patient_ids: frozenset[str], raw: bytes | None = None) -> Response:
    """Audit what the answer held, then send it as Orthanc would: its XML when Accept asks for it,
    else JSON (Orthanc's own bytes, when they are at hand)."""
    refused = audit_answer(runtime, principal, request, family, len(data) if isinstance(data, list) else 1,
                           patient_ids)
    if refused is not None:
        return refused
    if data is not None and wants_xml(request.headers.get("accept")):
        return Response(200, json_to_xml(data), XML_TYPE)
    return Response(200, raw if raw is not None else json.dumps(data).encode(), ORTHANC_JSON)


def _patients(data: Any) -> frozenset[str]:
    """The PatientIDs an expanded answer (or one patient) names; ids-only answers name none."""
    if not isinstance(data, (list, dict)):
        return frozenset()
    found = set()
    for item in data if isinstance(data, list) else [data]:
        if isinstance(item, dict):
            tags = item.get("PatientMainDicomTags") or item.get("MainDicomTags") or {}
            patient_id = patient_id_in(tags)
            if patient_id is not None:
                found.add(patient_id)
    return frozenset(found)


def _located_patients(runtime: Runtime, level: str | None, data: Any) -> frozenset[str]:
    """The PatientIDs of a trimmed answer that names its resources by id alone (ids-only finds,
    1.12.5's ResponseContent without the patient's tags): each resource's patient, as the gate
    located it when deciding who may see it."""
    if not isinstance(data, list) or level not in ("patient", "study", "series", "instance"):
        return frozenset()
    found = set()
    for item in data:
        oid = item if isinstance(item, str) else item.get("ID") if isinstance(item, dict) else None
        located = runtime.access.locator.by_orthanc_id(level, oid) if isinstance(oid, str) else None
        if located is not None:
            found.add(located.patient_id)
    return frozenset(found)


def _with_query(request: Request) -> str:
    """The request's own path and query for the core: Orthanc hands plugins query values as
    received (not percent-decoded), so they are passed on as they are."""
    if not request.query:
        return request.path
    parts = [key if value == "" else f"{key}={value}" for key, value in request.query.items()]
    return request.path + "?" + "&".join(parts)


def _paging(query: dict[str, str]) -> tuple[int | None, int | None]:
    try:
        since = int(query["since"]) if "since" in query else None
        limit = int(query["limit"]) if "limit" in query else None
    except ValueError:
        raise BadRequest("Since and limit must be whole numbers") from None
    if (since is not None and since < 0) or (limit is not None and limit < 0):
        raise BadRequest("Since and limit must not be negative")
    return since, limit


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body.decode("utf-8") or "null")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object")
    return body

"""DICOMweb searches (QIDO-RS), where the Gate answers them in the DICOMweb plugin's place
(services/dicomweb_search.py). The gate has decided and audited each
request already; here the caller gets the plugin's answer, trimmed unless they are an admin."""

from __future__ import annotations

from plugin.handlers.http import Request, Response
from plugin.handlers.shared import audit_answer, caller
from plugin.policies.dicomweb_search import INSTANCE, SERIES, STUDY
from plugin.services.runtime import Runtime


def search_studies(runtime: Runtime, request: Request) -> Response:
    return _search(runtime, request, STUDY, ())


def search_series(runtime: Runtime, request: Request, *path_uids: str) -> Response:
    return _search(runtime, request, SERIES, path_uids)


def search_instances(runtime: Runtime, request: Request, *path_uids: str) -> Response:
    return _search(runtime, request, INSTANCE, path_uids)


def store_instances(runtime: Runtime, request: Request) -> Response:
    """POST /dicom-web/studies (STOW-RS). Over HTTP Orthanc hands a POST to the plugin's chunked
    route before any other, so the plugin stores it; only an internal call (Lua, another plugin)
    arrives here, and such a call carries no Content-Type: the plugin answers it 415 too."""
    return Response(415)


def _search(runtime: Runtime, request: Request, level: str, path_uids: tuple[str, ...]) -> Response:
    principal = caller(runtime, request)
    answer = runtime.dicomweb.search(principal, level, request.query, request.headers, path_uids, runtime.clock())
    if answer.status == 200:
        # Whose data the answer held (the gate's own record of the request has the query).
        refused = audit_answer(runtime, principal, request, "dicomweb_search", answer.count,
                               answer.patient_ids)
        if refused is not None:
            return refused
    return Response(answer.status, answer.body, answer.content_type, parts=answer.parts)

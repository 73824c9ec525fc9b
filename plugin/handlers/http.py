"""Plain HTTP request/response values for handlers, and the one place errors become HTTP."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from plugin.errors import GateError, NotFound
from plugin.identity.authenticate import SESSION_COOKIE, Identification

# On every answer the plugin sends (lists, searches, pages, the API): nothing of it is kept by a
# browser or a shared cache (it may name patients), and no browser second-guesses its type. A
# response may set its own Cache-Control (static assets do).
ANSWER_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

# Pages add these (ANSWER_HEADERS come with every answer, pages included).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    # Not "no-referrer": with it a browser sends `Origin: null` on a same-site form post, and the
    # login and form CSRF checks (which compare Origin with Host) would refuse every real browser.
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    query: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    ip: str = ""
    # Who is calling, identified once for the request by the dispatcher (entry.py), which hands it
    # to the handler; handlers read it through handlers/shared.py `identified`.
    identification: Identification | None = None

    def form(self) -> dict[str, str]:
        """The body as a form (urlencoded) or a JSON object, whichever the client sent."""
        content_type = self.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadBody("The request body is not UTF-8") from exc
        if content_type == "application/json":
            try:
                data = json.loads(text or "{}")
            except ValueError as exc:
                raise BadBody("The request body is not valid JSON") from exc
            if not isinstance(data, dict):
                raise BadBody("The request body must be a JSON object")
            return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    @property
    def wants_json(self) -> bool:
        return "application/json" in self.headers.get("content-type", "") or \
            "application/json" in self.headers.get("accept", "")


class BadBody(GateError):
    status = 400
    code = "bad_request"


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    challenge: str | None = None  # realm of a 401 Basic challenge
    parts: tuple[bytes, ...] | None = None  # a multipart/related answer of parts of `content_type`

    @staticmethod
    def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(status, json.dumps(data).encode(), "application/json", dict(headers or {}))

    @staticmethod
    def html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(status, text.encode("utf-8"), "text/html; charset=utf-8",
                        {**SECURITY_HEADERS, **(headers or {})})

    @staticmethod
    def redirect(location: str, headers: dict[str, str] | None = None) -> Response:
        # 303 (not Orthanc's Redirect(), which sends a cacheable 301 and drops our headers).
        return Response(303, b"", "text/plain", {"Location": location, "Cache-Control": "no-store",
                                                  **(headers or {})})


def sentence(text: str) -> str:
    """A message as users are shown it: starting with a capital, whichever module wrote it, unless
    it starts with a name of ours (a field like patient_id, a path, a quoted key)."""
    first = text.split(" ", 1)[0]
    if not text[:1].islower() or "_" in first or "/" in first:
        return text
    return text[:1].upper() + text[1:]


# Store ids are INTEGER columns: 32-bit on PostgreSQL (which refuses a larger number even in a
# look-up), 64-bit on SQLite. No row's id exceeds this; a larger number names nothing on either.
MAX_ID = 2**31 - 1


def record_id(text: str, what: str) -> int:
    """The numeric id in a path (routes match [0-9]+); one too large to exist is simply unknown."""
    if len(text) > len(str(MAX_ID)) or int(text) > MAX_ID:
        raise NotFound(f"No {what} {text[:len(str(MAX_ID))]}{'...' if len(text) > len(str(MAX_ID)) else ''}")
    return int(text)


def error_response(error: GateError, browser_session: bool = False) -> Response:
    """The single mapping of typed errors to HTTP answers. A 401 carries a Basic challenge, but to
    a browser's session (`browser_session`, see `is_browser_session`), which the browser would meet
    with a password prompt instead of letting the page send the user to the sign-in page."""
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after else None
    body = {"error": error.code, "message": sentence(error.message), **({"field": error.field} if error.field else {})}
    response = Response.json(body, error.status, headers)
    if error.status == 401 and not browser_session:
        return dataclasses.replace(response, challenge="Orthanc Gate")
    return response


def is_browser_session(headers: dict[str, str]) -> bool:
    """Whether a request comes from a page's script or carries the session cookie (perhaps one that
    has ended): a browser signed in through the sign-in page, not a Basic client."""
    if headers.get("x-requested-with", "").lower() == "xmlhttprequest":
        return True
    return any(part.strip().startswith(SESSION_COOKIE + "=") for part in headers.get("cookie", "").split(";"))

"""Cross-site request forgery rule for requests that rely on the session cookie."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from plugin.policies.routes import SAFE_METHODS


def same_origin(headers: dict[str, str]) -> bool:
    """True when the browser says the request comes from a page of this same server."""
    host = headers.get("host", "").lower()
    source = headers.get("origin") or headers.get("referer") or ""
    if not host or not source or source == "null":
        return False
    return urlsplit(source).netloc.lower() == host


def csrf_ok(method: str, via: str, headers: dict[str, str], session_csrf: str | None,
            form_token: str | None = None) -> bool:
    """May this state-changing request be trusted not to be forged by another site?

    A session cookie is attached by the browser on its own, so it needs the session's CSRF token
    or a same-origin browser. Basic credentials a browser has cached are attached on their own too,
    so a Basic request that a browser marks as coming from elsewhere is refused; scripts send no
    Origin. An API key is never attached by a browser on its own.
    """
    if method in SAFE_METHODS:
        return True
    if via == "session":
        presented = headers.get("x-csrf-token") or form_token or ""
        if session_csrf and presented and hmac.compare_digest(presented, session_csrf):
            return True
        return same_origin(headers)
    if via == "basic" and (headers.get("origin") or headers.get("referer")):
        return same_origin(headers)
    return True

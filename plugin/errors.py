"""Typed errors users see: each carries an HTTP status, a stable code and a human message."""

from __future__ import annotations


class GateError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field  # the input field at fault, when one is (forms show the message beside it)


class ConfigError(GateError):
    """The configuration is unusable; the plugin must not start."""

    code = "bad_configuration"


class BadRequest(GateError):
    status = 400
    code = "bad_request"


class Unauthenticated(GateError):
    status = 401
    code = "unauthenticated"


class OtpRequired(Unauthenticated):
    """The password was right; a one-time code is owed too."""

    code = "otp_required"


class Forbidden(GateError):
    status = 403
    code = "forbidden"


class RateLimited(Forbidden):
    """Too many failed sign-ins. 403, not 429: Orthanc drops a 429 sent by a plugin (an empty
    reply, seen on 1.10.1 with Python plugin 4.0 and on 1.12.7 with 5.0)."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(GateError):
    status = 404
    code = "not_found"


class Conflict(GateError):
    status = 409
    code = "conflict"


class StoreUnavailable(GateError):
    status = 503
    code = "store_unavailable"


class DirectoryDown(GateError):
    status = 503
    code = "directory_unavailable"


def unavailable_message(why: str) -> str:
    """What a directory user is told when the directory cannot check their password, and why."""
    reason = why.removeprefix("directory unavailable: ")
    return f"The directory is unavailable ({reason}); directory accounts cannot sign in just now"


class MfaRequired(Forbidden):
    """A privileged change needs a one-time code proved moments ago."""

    code = "mfa_required"

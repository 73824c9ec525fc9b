"""When something given for a time ends: an ISO 8601 instant with its time zone, in the future."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plugin.errors import BadRequest


def expiry(data: dict[str, Any], now: float, field: str = "expires_at") -> float | None:
    """The instant `data[field]` names (epoch seconds), None when it is absent; BadRequest otherwise."""
    raw = data.get(field)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadRequest(f"{field} must be an ISO 8601 date and time, e.g. 2027-01-31T17:00:00+02:00")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{field} {raw!r} is not an ISO 8601 date and time, "
                         "e.g. 2027-01-31T17:00:00+02:00") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{field} needs a time zone (Z or an offset such as +02:00)")
    expires = moment.timestamp()
    if expires <= now:
        raise BadRequest(f"{field} is in the past")
    return expires

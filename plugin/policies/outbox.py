"""When a message that failed is tried again, when it is given up, and how a recipient is shown (pure)."""

from __future__ import annotations

# 2**62 times any sensible base is far beyond any maximum; the cap keeps the float finite.
_MAX_DOUBLINGS = 62


def retry_delay(attempts: int, base: float, maximum: float, jitter: float) -> float:
    """Seconds to wait after the `attempts`-th failed try: base, 2*base, 4*base, ... capped at
    `maximum`, then shortened by up to half (`jitter` in [0, 1)) so that messages which failed
    together (the server was down) do not all come back in the same second."""
    doublings = min(max(attempts, 1) - 1, _MAX_DOUBLINGS)
    capped = min(maximum, base * 2.0 ** doublings)
    return capped * (1.0 - jitter / 2.0)


def is_dead(attempts: int, max_attempts: int) -> bool:
    """After this many failed tries the message is given up (an admin may retry it)."""
    return attempts >= max_attempts


def mask_email(address: str) -> str:
    """"d***@example.com": enough for an admin to recognise, not to copy."""
    local, at, domain = address.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(number: str) -> str:
    """"+2782***4567": country and network code, and the last four digits."""
    if len(number) < 10:
        return "***"
    return f"{number[:5]}***{number[-4:]}"

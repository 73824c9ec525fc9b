"""Where a browser may be sent back to after signing in: a path of this same server, nothing else."""

from __future__ import annotations

from urllib.parse import unquote

MAX_DECODINGS = 4


def local_path(target: str | None, default: str) -> str:
    """`target` when, once percent-decoded (as often as it decodes), it is a plain path of this
    server; `default` otherwise.

    A browser reads `//host`, `/\\host` and `/<tab>/host` as another site, and control characters
    or spaces in a Location header can split it; so the decoded target must start with a single
    `/`, hold no backslash and only printable ASCII without spaces. The decoded form is returned, so
    what is checked is what is sent.
    """
    if not target:
        return default
    decoded = target
    for _ in range(MAX_DECODINGS):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    else:
        return default  # still decoding: made to confuse
    if not decoded.startswith("/") or decoded.startswith("//") or "\\" in decoded:
        return default
    if any(not (0x20 < ord(c) < 0x7F) for c in decoded):
        return default
    return decoded

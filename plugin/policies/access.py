"""The access decision: (principal, route, level held on its resource) -> Decision, with the
reason the audit records."""

from __future__ import annotations

from plugin.policies.levels import REQUIRED_LEVEL, AccessLevel
from plugin.policies.types import Decision, Principal, RouteInfo

# Reachable without signing in: the login page, health and our static assets, and `/`, whose
# handler only redirects (to the login page or to the viewer).
PUBLIC_FAMILIES = frozenset({"root", "gate_public", "favicon"})
# Orthanc Explorer's and the OHIF Viewer's static files and the server's name and version: no
# patient data, but nothing for anonymous callers.
SIGNED_IN_FAMILIES = frozenset({"ui_asset", "ohif_asset", "system_info"})
# Families whose answer names one patient or study, decided by the grant held on it.
GRANTED_FAMILIES = frozenset({"patients", "studies", "series", "instances", "wado", "dicomweb",
                              "dicomweb_search", "tools_archive", "tools_bulk", "web_viewer"})


def decide(principal: Principal, route: RouteInfo, held: AccessLevel | None = None) -> Decision:
    """Default deny: only the rules below open anything.

    `held` is the level the caller's grants give on the resource the route names (the lowest
    over all of them when it names several); the gate works it out before asking.
    """
    if route.malformed:
        return Decision.deny(f"malformed request: {route.malformed}")
    if route.family in PUBLIC_FAMILIES:
        return Decision.allow("public route")
    if route.own_route:
        return Decision.allow("plugin route, authorised by its handler")
    if principal.is_anonymous:
        return Decision.deny("authentication required")
    if principal.must_change_password:
        return Decision.deny("password change required")
    if principal.mfa_pending:
        return Decision.deny("second factor (one-time code) required")
    if principal.is_admin:
        return Decision.allow("admin")
    if route.query_problem:
        return Decision.deny(f"search refused: {route.query_problem}")
    if route.family in SIGNED_IN_FAMILIES and not route.carries_phi:
        return Decision.allow("signed in; no patient data")
    if route.trimmed:
        return Decision.allow("answer trimmed to the caller's grants")
    if route.family == "unknown":
        return Decision.deny("unknown route")
    if route.family not in GRANTED_FAMILIES:
        return Decision.deny("admin only")
    return _by_grant(route, held)


def _by_grant(route: RouteInfo, held: AccessLevel | None) -> Decision:
    required = REQUIRED_LEVEL.get(route.action)
    if required is None:
        return Decision.deny("admin only")
    if held is None:
        return Decision.deny("no grant for this resource")
    if held < required:
        return Decision.deny(f"grant {held.label} does not allow {route.action.value} (needs {required.label})")
    return Decision.allow(f"grant {held.label}")

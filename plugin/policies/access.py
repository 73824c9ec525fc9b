"""The access decision: (principal, route) -> Decision, with the reason the audit records."""

from __future__ import annotations

from plugin.policies.types import Decision, Principal, RouteInfo

# Reachable without signing in: the login page, health and our static assets, and `/`, whose
# handler only redirects (to the login page or to the viewer).
PUBLIC_FAMILIES = frozenset({"root", "gate_public"})
# Orthanc Explorer's static files: no patient data, but nothing for anonymous callers.
UI_FAMILIES = frozenset({"ui_asset"})


def decide(principal: Principal, route: RouteInfo) -> Decision:
    """Default deny: only the rules below open anything."""
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
    if route.family in UI_FAMILIES and not route.carries_phi:
        return Decision.allow("user interface asset")
    if route.family == "unknown":
        return Decision.deny("unknown route")
    return Decision.deny("no grant for this resource")

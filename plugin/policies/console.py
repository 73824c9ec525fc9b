"""Who may open the admin console (/gate/admin/): an admin, in a browser session that proved a
one-time code. Pure: the caller is the identified principal."""

from __future__ import annotations

from plugin.policies.types import Principal

NOT_A_BROWSER = ("The admin console is for a signed-in browser; scripts use the JSON API under /gate/api/ "
                 "(see docs/api.md).")
NOT_AN_ADMIN = "Only administrators may open the admin console."
NO_SECOND_STEP = ("The admin console needs a two-step sign-in. Set up your authenticator at /gate/mfa, "
                  "then sign out and sign in again with a one-time code.")


def console_refusal(principal: Principal) -> str | None:
    """Why this signed-in caller may not use the console, or None. Callers who still owe a new
    password or a code are sent to finish signing in before this is asked."""
    if principal.via != "session":
        return NOT_A_BROWSER
    if not principal.is_admin:
        return NOT_AN_ADMIN
    if not principal.mfa_done:
        return NO_SECOND_STEP
    return None

"""The doctor dashboard's visits: each page load is written to the account (policies/dashboard.py
decides whether it starts a new visit)."""

from __future__ import annotations

from plugin.policies.dashboard import Visit, next_visit
from plugin.store import accounts
from plugin.store.db import Store


def record_visit(store: Store, username: str, now: float) -> Visit | None:
    """Count a page load at `now`: the visit it belongs to, and the one before (None: no account)."""
    with store.transaction() as db:
        user = accounts.user_by_name(db, username)
        if user is None:
            return None
        visit = next_visit(user.visit_at, user.previous_visit_at, now)
        user.visit_at, user.previous_visit_at = visit.visit_at, visit.previous_visit_at
        return visit

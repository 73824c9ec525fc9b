"""What /gate/health reports: whether the Gate started and whether its store can be written."""

from __future__ import annotations

from typing import Any

from plugin.store.db import Store


def health_report(store: Store | None, startup_error: str = "") -> dict[str, Any]:
    if startup_error or store is None:
        return {"status": "unavailable", "reason": startup_error or "the Gate did not start",
                "store": "unknown"}
    if not store.health.ok:
        return {"status": "unavailable", "reason": f"store unavailable: {store.health.error}",
                "store": f"unavailable: {store.health.error}"}
    return {"status": "ok", "store": "ok"}

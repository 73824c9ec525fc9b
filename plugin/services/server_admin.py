"""Managing the Orthanc process from the admin console: its restart (after a fresh one-time code,
and only with a configuration that checks clean), its jobs, and the tail of its log."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugin.errors import Conflict
from plugin.identity.mfa import Mfa
from plugin.services.accounts import AuditSink, account_event
from plugin.services.core import Core, CoreError
from plugin.services.users import Actor, require_fresh_mfa
from plugin.store.db import Store

LOG_LINES = 200
MAX_LOG_BYTES = 256 * 1024  # read from the end of the log file, at most
MAX_JOBS = 100


@dataclass(frozen=True)
class OrthancProcess:
    """What the Gate knows of the Orthanc it runs in (entry.py fills it from orthanc_api)."""

    configuration: dict[str, Any] = field(default_factory=dict)  # the effective configuration, as read at start
    configuration_path: Path | None = None  # the file (or folder) Orthanc was started with
    log_file: Callable[[], Path | None] = lambda: None  # where Orthanc logs, if to a file
    restart: Callable[[], None] | None = None  # stop cleanly and start again (orthanc_api.restart)


def restart(store: Store, audit: AuditSink, mfa: Mfa | None, actor: Actor, now: float, process: OrthancProcess,
            problems: list[str]) -> None:
    """Restart Orthanc: the caller's one-time code must be fresh (or sent now), and the
    configuration it will read again must have checked clean (`problems` empty). Audited before."""
    if process.restart is None:
        raise Conflict("This server cannot be restarted from here")
    if problems:
        raise Conflict("The configuration has errors; fix them first, or Orthanc would not start again: "
                       + "; ".join(problems[:5]))
    require_fresh_mfa(store, audit, mfa, actor, now, "server.restart")
    if not audit(account_event(now, actor.username, "server.restart", "success", "restarted Orthanc", actor.ip,
                               ",".join(sorted(actor.roles)))):
        raise Conflict("The audit could not be written; the server was not restarted")
    process.restart()


def jobs(core: Core) -> list[dict[str, Any]]:
    """Orthanc's jobs, newest first, with their state and progress (empty if Orthanc does not say)."""
    try:
        found = core.get("/jobs?expand")
    except CoreError:
        return []
    if not isinstance(found, list):
        return []
    shown = [{"id": job.get("ID"), "type": job.get("Type"), "state": job.get("State"),
              "progress": job.get("Progress"), "created": job.get("CreationTime"),
              "completed": job.get("CompletionTime"), "error": job.get("ErrorDescription")}
             for job in found if isinstance(job, dict)]
    return sorted(shown, key=lambda job: str(job["created"] or ""), reverse=True)[:MAX_JOBS]


def log_tail(process: OrthancProcess, lines: int = LOG_LINES) -> dict[str, Any]:
    """The last lines of Orthanc's log file, when it writes one (--logfile or --logdir)."""
    path = process.log_file()
    if path is None:
        return {"file": None, "lines": []}
    try:
        with path.open("rb") as log:
            log.seek(0, 2)
            size = log.tell()
            log.seek(max(0, size - MAX_LOG_BYTES))
            text = log.read().decode("utf-8", "replace")
    except OSError as exc:
        return {"file": str(path), "lines": [], "error": f"The log could not be read ({exc.strerror})"}
    return {"file": str(path), "lines": list(deque(text.splitlines(), maxlen=lines))}

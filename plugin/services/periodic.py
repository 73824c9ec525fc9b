"""A piece of work run every so often on a background thread, until the Gate stops."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Runs `work` every `interval` seconds on a daemon thread, and at once when woken. A failure is
    logged with `what`, never fatal: the next round tries again. `stop` ends the thread and waits."""

    def __init__(self, name: str, interval: float, work: Callable[[], object], what: str,
                 warn: Callable[[str], None]) -> None:
        self._name = name
        self._interval = interval
        self._work = work
        self._what = what
        self._warn = warn
        self._stopping = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the work now (or right after the round in progress)."""
        self._woken.set()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._woken.wait(self._interval)
            self._woken.clear()
            if self._stopping.is_set():
                return
            try:
                self._work()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one failure
                self._warn(f"Gate: {self._what} failed ({type(exc).__name__})")

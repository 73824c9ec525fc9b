"""The audit log writer: group commit, coalescing of repeated reads, disk spool, checkpoints.

Callers hand in records from many HTTP threads; one writer thread appends whatever is queued in a
single transaction (group commit), so a durable row per request costs little. A caller that needs
its row durable before it answers (every allowed read of patient data) waits for that commit.

Repeated identical events (same actor, resource, action, outcome) inside the coalescing window
share the first event's row: the first is durable before its response, the repeats only bump a
counter, and a summary row with the count is appended when the window closes. Denials coalesce
the same way (by actor or address, method and path, reason and what was asked for), except that
nobody waits for their rows; and one source (an account, or an address for callers not signed
in) gets at most DENIAL_ROWS_PER_SOURCE rows of denials per window, the rest counted in one row,
so a client hammering refused routes cannot flood the chain. Logins and admin changes are never coalesced.

If the store cannot be written, records nobody waits for (denials, summaries) are appended to a
spool file (fsync'd) and replayed into the chain when the store is back; a caller waiting for an
allowed read gets False, and the gate refuses the request.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path

from plugin.audit.chain import checkpoint_mac, row_hash
from plugin.audit.record import AuditRecord, iso_utc
from plugin.errors import StoreUnavailable
from plugin.store import audit as audit_rows
from plugin.store.db import Store

MAX_BATCH = 500
PROBE_EVERY_SECONDS = 2.0
DENIAL_ROWS_PER_SOURCE = 100
FLOOD_REASON = "more refused requests from this caller than are recorded one by one; counted here"


class _Pending:
    __slots__ = ("record", "durable", "done", "ok", "audit_id")

    def __init__(self, record: AuditRecord, durable: bool = False) -> None:
        self.record = record
        self.durable = durable  # a caller waits for it and refuses its request if it fails
        self.done = threading.Event()
        self.ok = False
        self.audit_id = 0


class ReadWindow:
    """One coalescing window: the first read's durable row plus a count of the reads it covers.

    `repeat` is the hot path of every cached read: no lock, and `next()` on an itertools.count is
    atomic under the GIL, so concurrent repeats are all counted.
    """

    __slots__ = ("pending", "opened", "closes", "last", "closed", "_counter", "_needs_row")

    def __init__(self, pending: _Pending, opened: float, span: float, needs_row: bool = True) -> None:
        self.pending = pending
        self.opened = opened
        self.closes = opened + span
        self.last = opened
        self.closed = False
        self._counter = itertools.count()
        # A read is covered only once the first row is committed; a denial is counted as soon as
        # its first row is queued (nobody waits for it; if the store is down it is spooled).
        self._needs_row = needs_row

    def repeat(self, now: float) -> bool:
        """Count one more read covered by this window; False when it can no longer cover it."""
        if self.closed or now >= self.closes or (self._needs_row and not self.pending.ok):
            return False
        next(self._counter)
        self.last = now
        return True

    def close(self) -> int:
        """Close the window; returns how many repeats it covered."""
        self.closed = True
        return next(self._counter)


class AuditLog:
    def __init__(self, store: Store, checkpoint_key: bytes, spool_file: Path, checkpoint_file: Path,
                 coalesce_seconds: float = 60.0, checkpoint_seconds: float = 300.0,
                 wait_seconds: float = 12.0, clock: Callable[[], float] = time.time,
                 warn: Callable[[str], None] = lambda message: None) -> None:
        self._store = store
        self._key = checkpoint_key
        self._spool_file = spool_file
        self._checkpoint_file = checkpoint_file
        self._coalesce = coalesce_seconds
        self._checkpoint_every = checkpoint_seconds
        self._wait = wait_seconds
        self._clock = clock
        self._warn = warn
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._windows: dict[Hashable, ReadWindow] = {}
        self._denial_rows: dict[str, int] = {}  # source -> denial rows opened in this span
        self._denial_span_ends = clock() + coalesce_seconds
        self._running = False
        self._stopped = False  # after stop(): callers write their own records (no writer is left)
        self._thread: threading.Thread | None = None
        self._last_checkpoint = clock()
        self._last_probe = clock()
        self._unsigned_rows = False

    # -- callers ---------------------------------------------------------------------------

    def record(self, record: AuditRecord, durable: bool = False) -> bool:
        """Queue a record. With durable=True, wait until it is committed; False if it was not."""
        pending = _Pending(record, durable)
        with self._cond:
            self._queue.append(pending)
            self._cond.notify()
            stopped = self._stopped
        if stopped:
            self._write_queued()
        return self._await(pending) if durable else True

    def cover_read(self, key: Hashable, make_record: Callable[[], AuditRecord],
                   now: float | None = None) -> ReadWindow | None:
        """Audit an allowed read: the window whose durable row covers it, or None if none can.

        Inside an open window a read only bumps its counter; otherwise a new row is written (by
        calling `make_record`) and this waits for its commit. Keep the window to count further
        identical reads with `ReadWindow.repeat` without coming back here.
        """
        now = self._clock() if now is None else now
        if self._stopped:
            # No window stays open after stop(): nothing would write its count. Each read gets
            # its own row, written here, and a window that covers no repeat.
            pending = _Pending(make_record(), durable=True)
            with self._cond:
                self._queue.append(pending)
            self._write_queued()
            if not self._await(pending):
                return None
            window = ReadWindow(pending, now, 0.0)
            window.close()
            return window
        with self._cond:
            window = self._windows.get(key)
            if window is not None and window.repeat(now):
                return window
            if window is not None and not window.pending.done.is_set():
                pending, created = window.pending, False  # the first read is being written
            else:
                if window is not None:
                    self._close_window(window)
                pending = _Pending(make_record(), durable=True)
                window = ReadWindow(pending, now, self._coalesce)
                self._windows[key] = window
                self._queue.append(pending)
                self._cond.notify()
                created = True
        if not self._await(pending):
            return None
        # A read that waited for another's first row is counted as a repeat of it; if the window
        # closed meanwhile, that first row still covers it.
        if not created:
            window.repeat(now)
        return window

    def record_denial(self, key: Hashable, source: str, make_record: Callable[[], AuditRecord],
                      now: float | None = None) -> None:
        """Audit a refused request: a row for the first of its kind (`key`) in the coalescing
        window, a count for the others. `source` is who is held to DENIAL_ROWS_PER_SOURCE rows
        per window (an account, or an address for callers not signed in). Never waits."""
        now = self._clock() if now is None else now
        if self._stopped:
            self.record(make_record())  # written at once, uncounted: no window outlives stop()
            return
        with self._cond:
            window = self._windows.get(key)
            if window is not None and window.repeat(now):
                return
            if now >= self._denial_span_ends:
                self._denial_rows.clear()
                self._denial_span_ends = now + self._coalesce
            if self._denial_rows.get(source, 0) >= DENIAL_ROWS_PER_SOURCE:
                key = ("denial flood", source)
                window = self._windows.get(key)
                if window is not None and window.repeat(now):
                    return
                record = dataclasses.replace(make_record(), reason=FLOOD_REASON)
            else:
                record = make_record()
            self._denial_rows[source] = self._denial_rows.get(source, 0) + 1
            if window is not None:
                self._close_window(window)
            pending = _Pending(record)
            self._windows[key] = ReadWindow(pending, now, self._coalesce, needs_row=False)
            self._queue.append(pending)
            self._cond.notify()

    def _await(self, pending: _Pending) -> bool:
        # wait_seconds is longer than a store operation may take (runtime.py), so the writer has
        # settled this record, one way or the other, before the wait ends: an allow is never
        # committed after its request was refused.
        pending.done.wait(self._wait)
        return pending.ok

    # -- writer ----------------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._run, name="gate-audit-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, the counts of open windows and a final checkpoint.

        Orthanc may still pass requests to the gate after this (it tells plugins it stops before
        it stops its HTTP server): from here on each caller writes its own record at once, rather
        than waiting out `wait_seconds` for a writer that is gone. Calling stop() again signs
        what they wrote.
        """
        with self._cond:
            self._running = False
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=self._wait)  # it writes what is queued, then ends
        self.flush()  # the open windows' counts, after the rows they name
        self._checkpoint(force=True)

    def flush(self) -> None:
        """Close every coalescing window and write everything now (tests and shutdown)."""
        self._write_queued()  # first rows before the summaries that name them
        with self._cond:
            for window in list(self._windows.values()):
                self._close_window(window)
            self._windows.clear()
        self._write_queued()

    def _close_window(self, window: ReadWindow) -> None:
        """Queue the summary of a window's repeats (the caller holds the lock)."""
        repeats = window.close()
        # A read's first row is committed (its repeats were only counted then); a denial's may
        # have gone to the spool, and its summary follows it there if need be.
        if repeats and (window.pending.ok or not window.pending.durable):
            first = window.pending.record
            summary = dataclasses.replace(
                first, ts=iso_utc(window.last), count=repeats,
                reason=f"{repeats} more of the same since {first.ts}",
                detail=json.dumps({"coalesced_into": window.pending.audit_id or None, "first_ts": first.ts}))
            self._queue.append(_Pending(summary))

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._running and not self._queue:
                    self._cond.wait(timeout=0.5)
                running = self._running
                self._expire_windows()
            wrote = self._write_queued()
            if not running:
                return
            if not self._store.health.ok:
                self._recover()
            elif not wrote and self._clock() - self._last_probe >= PROBE_EVERY_SECONDS:
                # Find out that the store went away even when nothing is being written, so that
                # /gate/health tells the truth and reads are refused before they are attempted.
                self._last_probe = self._clock()
                try:
                    self._store.probe()
                except StoreUnavailable:
                    pass
            self._checkpoint()

    def _expire_windows(self) -> None:
        now = self._clock()
        for key, window in list(self._windows.items()):
            if now >= window.closes:
                del self._windows[key]
                self._close_window(window)

    def _write_queued(self) -> bool:
        """Append everything queued, MAX_BATCH rows per transaction. True when something was written.

        One writer at a time (the writer thread, or flush and stop): a batch taken by one is
        committed before another takes the next, so rows keep their order and a flush returns only
        once everything queued before it is in the store.
        """
        with self._write_lock:
            return self._write_batches()

    def _write_batches(self) -> bool:
        # If the store fails, everything still queued fails with it at once (rather than each
        # batch waiting out the store's timeout in turn).
        wrote = False
        while True:
            with self._cond:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            if not batch:
                return wrote
            rows = [dataclasses.asdict(p.record) for p in batch]
            try:
                self._replay_spool()
                with self._store.transaction() as session:
                    ids = audit_rows.append_events(session, rows, row_hash)
            except StoreUnavailable as exc:
                with self._cond:
                    batch, self._queue = batch + self._queue, []
                self._fail(batch, exc)
                return wrote
            self._store.health.mark_ok()
            self._unsigned_rows = True
            self._last_probe = self._clock()
            for pending, audit_id in zip(batch, ids, strict=True):
                pending.audit_id = audit_id
                pending.ok = True
                pending.done.set()
            wrote = True

    def _fail(self, batch: list[_Pending], exc: StoreUnavailable) -> None:
        self._store.health.mark_failed(exc.__cause__ or exc)
        self._warn(f"audit: {exc.message}; spooling to {self._spool_file}")
        # A durable record's caller refuses its request when the write fails, so only the
        # others (denials, counts of coalesced reads) are kept for later.
        self._spool([p.record for p in batch if not p.durable])
        for pending in batch:
            pending.done.set()

    # -- spool, recovery and checkpoints -----------------------------------------------------

    def _spool(self, records: list[AuditRecord]) -> None:
        if not records:
            return
        self._spool_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._spool_file, "a", encoding="utf-8") as spool:
            for record in records:
                spool.write(json.dumps(dataclasses.asdict(record)) + "\n")
            spool.flush()
            os.fsync(spool.fileno())

    def _replay_spool(self) -> None:
        """Chain what was spooled while the store was down, then remove the spool."""
        if not self._spool_file.exists():
            return
        lines = self._spool_file.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        if rows:
            with self._store.transaction() as session:
                audit_rows.append_events(session, rows, row_hash)
        self._spool_file.unlink()

    def _recover(self) -> None:
        try:
            with self._write_lock:  # the spool is replayed once, by one writer
                self._replay_spool()
            self._store.probe()
        except StoreUnavailable:
            time.sleep(0.5)

    def _checkpoint(self, force: bool = False) -> None:
        now = self._clock()
        if not force and (not self._unsigned_rows or now - self._last_checkpoint < self._checkpoint_every):
            return
        try:
            with self._store.transaction() as session:
                signed = audit_rows.append_checkpoint(
                    session, lambda audit_id, digest: checkpoint_mac(self._key, audit_id, digest), iso_utc(now))
        except StoreUnavailable:
            return
        self._last_checkpoint = now
        self._unsigned_rows = False
        if signed is not None:
            try:
                write_checkpoint_file(self._checkpoint_file, signed)
            except OSError as exc:  # the signed checkpoint is in the store; only its copy is missing
                self._warn(f"audit: checkpoint of row {signed['audit_id']} not copied to {self._checkpoint_file}: "
                           f"{exc.strerror or exc}")


def write_checkpoint_file(path: Path, checkpoint: dict) -> None:
    """Keep each checkpoint outside the database too, so deleting them there is detected."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(checkpoint, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_checkpoint_file(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_now(store: Store, record: AuditRecord) -> bool:
    """Append one record synchronously (gatectl, which has no writer thread). Raises if it cannot."""
    with store.transaction() as session:
        audit_rows.append_events(session, [dataclasses.asdict(record)], row_hash)
    return True

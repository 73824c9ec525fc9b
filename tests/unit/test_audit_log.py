"""The audit writer against a real SQLite store: durability, coalescing, spool, checkpoints."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from plugin.audit.log import DENIAL_ROWS_PER_SOURCE, FLOOD_REASON, MAX_BATCH, AuditLog, read_checkpoint_file
from plugin.audit.record import AuditRecord, iso_utc
from plugin.audit.verify import verify_store
from plugin.store import audit as audit_rows
from plugin.store.db import Store
from tests.unit.conftest import T0, FakeClock

KEY = b"test checkpoint key"
COALESCE = 60.0


class Paths:
    def __init__(self, root: Path) -> None:
        self.spool = root / "spool" / "gate-audit.spool"
        self.checkpoints = root / "gate-audit-checkpoint.log"


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path)


@pytest.fixture
def new_log(store: Store, paths: Paths, clock: FakeClock) -> Iterator[Callable[..., AuditLog]]:
    made: list[AuditLog] = []

    def make(start: bool = True, **options: float) -> AuditLog:
        log = AuditLog(store, KEY, paths.spool, paths.checkpoints, coalesce_seconds=COALESCE,
                       checkpoint_seconds=options.pop("checkpoint_seconds", 300.0),
                       wait_seconds=options.pop("wait_seconds", 5.0), clock=clock)
        if start:
            log.start()
        made.append(log)
        return log

    yield make
    for log in made:
        log.stop()


@pytest.fixture
def log(new_log: Callable[..., AuditLog]) -> AuditLog:
    return new_log()


def read(clock: FakeClock, who: str = "drnkosi", study: str = "s1") -> AuditRecord:
    return AuditRecord(ts=iso_utc(clock()), actor=who, action="view", outcome="allow", reason="admin",
                       method="GET", path=f"/studies/{study}", route_class="studies", level="study",
                       orthanc_id=study)


def denial(clock: FakeClock, reason: str = "no grant for this resource") -> AuditRecord:
    return AuditRecord(ts=iso_utc(clock()), actor="drnkosi", action="view", outcome="deny", reason=reason,
                       method="GET", path="/patients", route_class="resource_list")


def rows(store: Store) -> list[dict]:
    with store.read() as session:
        return list(audit_rows.iter_events(session))


def db_checkpoints(store: Store) -> list[dict]:
    with store.read() as session:
        return audit_rows.checkpoints(session)


@contextmanager
def raw_db(store: Store) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the store's file, in autocommit: what someone with the file has."""
    raw = sqlite3.connect(store.url.split(":///", 1)[1], isolation_level=None)
    try:
        yield raw
    finally:
        raw.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def counted_reads(clock: FakeClock, calls: list[int]) -> Callable[[], AuditRecord]:
    def make() -> AuditRecord:
        calls.append(1)
        return read(clock)

    return make


# -- durable writes ------------------------------------------------------------------------------


def test_durable_record_is_in_the_store_when_record_returns(log, store, clock):
    assert log.record(read(clock), durable=True) is True
    [row] = rows(store)
    assert (row["id"], row["actor"], row["orthanc_id"], row["count"]) == (1, "drnkosi", "s1", 1)


def test_non_durable_record_is_written_by_flush(log, store, clock):
    assert log.record(denial(clock)) is True
    log.flush()
    assert [r["outcome"] for r in rows(store)] == ["deny"]


def test_records_keep_their_order_in_the_chain(log, store, clock):
    for reason in ("first", "second", "third"):
        log.record(denial(clock, reason))
    log.flush()
    assert [r["reason"] for r in rows(store)] == ["first", "second", "third"]


# -- coalescing of reads --------------------------------------------------------------------------


def test_identical_reads_in_the_window_share_one_row_until_flush(log, store, clock):
    calls: list[int] = []
    for _ in range(5):
        assert log.cover_read(("drnkosi", "s1"), counted_reads(clock, calls)) is not None
        clock.advance(1)
    assert calls == [1]
    assert len(rows(store)) == 1


def test_flush_appends_a_summary_with_the_count_of_repeats(log, store, clock):
    for _ in range(5):
        log.cover_read(("drnkosi", "s1"), lambda: read(clock))
        clock.advance(1)
    log.flush()
    first, summary = rows(store)
    assert (first["count"], summary["count"]) == (1, 4)
    assert first["count"] + summary["count"] == 5
    assert json.loads(summary["detail"])["coalesced_into"] == first["id"]
    assert summary["ts"] == iso_utc(T0 + 4)
    assert summary["orthanc_id"] == "s1" and summary["actor"] == "drnkosi"


def test_stop_appends_the_summary_too(log, store, clock):
    for _ in range(3):
        log.cover_read(("drnkosi", "s1"), lambda: read(clock))
    log.stop()
    assert [r["count"] for r in rows(store)] == [1, 2]


def test_a_single_read_gets_no_summary(log, store, clock):
    log.cover_read(("drnkosi", "s1"), lambda: read(clock))
    log.flush()
    assert [r["count"] for r in rows(store)] == [1]


def test_read_after_the_window_opens_a_new_row(log, store, clock):
    calls: list[int] = []
    key = ("drnkosi", "s1")
    log.cover_read(key, counted_reads(clock, calls))
    log.cover_read(key, counted_reads(clock, calls))
    clock.advance(COALESCE)
    log.cover_read(key, counted_reads(clock, calls))
    log.flush()
    assert calls == [1, 1]
    assert [r["count"] for r in rows(store)] == [1, 1, 1]  # first, summary of 1 repeat, new window


def test_different_resources_are_not_coalesced(log, store, clock):
    log.cover_read(("drnkosi", "s1"), lambda: read(clock, study="s1"))
    log.cover_read(("drnkosi", "s2"), lambda: read(clock, study="s2"))
    log.flush()
    assert [r["orthanc_id"] for r in rows(store)] == ["s1", "s2"]


def test_writer_closes_expired_windows_on_its_own(log, store, clock):
    for _ in range(3):
        log.cover_read(("drnkosi", "s1"), lambda: read(clock))
    clock.advance(COALESCE + 1)
    assert wait_until(lambda: len(rows(store)) == 2, timeout=5)
    assert rows(store)[1]["count"] == 2


def test_records_not_asked_to_coalesce_are_not(log, store, clock):
    for _ in range(4):
        log.record(denial(clock))
    log.flush()
    assert [(r["outcome"], r["count"]) for r in rows(store)] == [("deny", 1)] * 4


def deny(log: AuditLog, clock: FakeClock, key: object, address: str = "10.6.6.6",
         reason: str = "authentication required") -> None:
    log.record_denial(key, address, lambda: dataclasses.replace(denial(clock, reason), source_ip=address))


def test_repeated_denials_share_one_row_and_a_count(log, store, clock):
    for _ in range(2000):
        deny(log, clock, ("anonymous", "resource_list", "authentication required"))
    log.flush()
    written = rows(store)
    assert [(r["reason"], r["count"]) for r in written] == [
        ("authentication required", 1), (f"1999 more of the same since {written[0]['ts']}", 1999)]
    assert json.loads(written[1]["detail"])["coalesced_into"] == written[0]["id"]


def test_denials_of_other_kinds_keep_their_own_first_row(log, store, clock):
    for _ in range(3):
        for reason in ("authentication required", "unknown route"):
            deny(log, clock, ("anonymous", reason), reason=reason)
    log.flush()
    assert sorted((r["reason"][:12], r["count"]) for r in rows(store)) == [
        ("2 more of th", 2), ("2 more of th", 2), ("authenticati", 1), ("unknown rout", 1)]


def test_one_address_gets_a_bounded_number_of_denial_rows_per_window(log, store, clock):
    for n in range(500):  # 500 kinds of refusal from one address
        deny(log, clock, ("kind", n))
    deny(log, clock, ("other address", 0), address="10.0.0.9")  # another address is not held back
    log.flush()
    written = rows(store)
    assert len(written) == DENIAL_ROWS_PER_SOURCE + 1 + 1 + 1  # each first, the flood row, its count, 10.0.0.9
    flood = [r for r in written if r["reason"] == FLOOD_REASON]
    assert len(flood) == 1 and flood[0]["count"] == 1
    assert sum(r["count"] for r in written if r["source_ip"] != "10.0.0.9") == 500
    clock.advance(COALESCE)
    deny(log, clock, ("kind", 499))  # a new window: rows again
    log.flush()
    assert rows(store)[-1]["reason"] == "authentication required"


def test_a_denial_is_counted_while_its_first_row_is_still_queued(new_log, store, clock):
    log = new_log(start=False)  # no writer yet: nothing is committed
    for _ in range(10):
        deny(log, clock, ("anonymous", "x"))
    log.flush()
    assert [r["count"] for r in rows(store)] == [1, 9]


def test_chain_verifies_after_reads_summaries_and_denials(log, store, clock, paths):
    for _ in range(3):
        log.cover_read(("drnkosi", "s1"), lambda: read(clock))
    log.record(denial(clock))
    for _ in range(5):
        deny(log, clock, ("anonymous", "x"))
    clock.advance(COALESCE)
    log.cover_read(("drnkosi", "s1"), lambda: read(clock))
    log.record(read(clock, study="s9"), durable=True)
    log.stop()
    report = verify_store(store, KEY, paths.checkpoints)
    assert report.ok, report.problem
    written = rows(store)
    assert report.rows == len(written)
    assert sum(r["count"] for r in written if r["orthanc_id"] == "s1") == 4
    assert [r["outcome"] for r in written].count("deny") == 3  # a denial, 5 coalesced: first row and count


# -- checkpoints ----------------------------------------------------------------------------------


def test_stop_signs_the_head_in_the_store_and_in_the_file(log, store, clock, paths):
    log.record(read(clock), durable=True)
    log.record(denial(clock), durable=True)
    log.stop()
    [in_db] = db_checkpoints(store)
    assert (in_db["audit_id"], in_db["row_hash"]) == (2, rows(store)[-1]["row_hash"])
    assert read_checkpoint_file(paths.checkpoints) == [in_db]
    assert verify_store(store, KEY, paths.checkpoints).checkpoints == 1


def test_stop_on_an_empty_chain_writes_no_checkpoint(log, store, paths):
    log.stop()
    assert db_checkpoints(store) == [] and not paths.checkpoints.exists()


def test_writer_signs_periodically_by_its_clock(new_log, store, clock, paths):
    log = new_log(checkpoint_seconds=10)
    log.record(read(clock), durable=True)
    assert db_checkpoints(store) == []
    clock.advance(11)
    # The file is appended just after the database commit: wait for both.
    assert wait_until(lambda: len(db_checkpoints(store)) == 1 and len(read_checkpoint_file(paths.checkpoints)) == 1,
                      timeout=5)
    assert read_checkpoint_file(paths.checkpoints) == db_checkpoints(store)


def test_checkpoint_deleted_from_the_database_is_detected(log, store, clock, paths):
    log.record(read(clock), durable=True)
    log.stop()
    with raw_db(store) as raw:
        raw.execute("DELETE FROM audit_checkpoints")
    report = verify_store(store, KEY, paths.checkpoints)
    assert not report.ok and "missing from the database" in report.problem


def test_the_store_refuses_to_edit_or_delete_audit_rows(log, store, clock):
    log.record(read(clock), durable=True)
    with raw_db(store) as raw:
        for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                raw.execute(statement)


def test_row_edited_in_the_database_is_detected(log, store, clock, paths):
    log.record(read(clock), durable=True)
    log.record(read(clock, study="s2"), durable=True)
    log.stop()
    with raw_db(store) as raw:  # someone with the file drops the guard
        raw.execute("DROP TRIGGER audit_events_no_update")
        raw.execute("UPDATE audit_events SET actor = 'someone-else' WHERE id = 1")
    report = verify_store(store, KEY, paths.checkpoints)
    assert not report.ok and report.bad_row == 1


# -- batches --------------------------------------------------------------------------------------


def test_flush_writes_everything_queued_even_more_than_one_batch(new_log, store, clock):
    log = new_log(start=False)
    for i in range(MAX_BATCH + 1):
        log.record(denial(clock, f"denial {i}"))
    log.flush()
    assert len(rows(store)) == MAX_BATCH + 1


def test_stop_writes_everything_queued_even_more_than_one_batch(new_log, store, clock):
    log = new_log(start=False)
    total = 4 * MAX_BATCH + 1
    for i in range(total):
        log.record(denial(clock, f"denial {i}"))
    log.start()
    log.stop()
    assert len(rows(store)) == total


# -- the store going away -------------------------------------------------------------------------


@pytest.fixture
def locked_store(db_path: Path) -> Iterator[Callable[[], None]]:
    """Hold SQLite's write lock from another connection; call the yielded function to release it."""
    holder = sqlite3.connect(db_path, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            holder.execute("ROLLBACK")
            released = True

    yield release
    release()
    holder.close()


def test_durable_record_fails_and_health_drops_while_the_store_is_locked(log, store, clock, locked_store):
    assert log.record(read(clock), durable=True) is False
    assert store.health.ok is False
    assert "locked" in store.health.error


def test_durable_read_fails_while_the_store_is_locked(log, store, clock, locked_store):
    assert log.cover_read(("drnkosi", "s1"), lambda: read(clock)) is None


def test_denial_is_spooled_while_locked_and_replayed_after(log, store, clock, paths, locked_store):
    assert log.record(read(clock, study="refused"), durable=True) is False
    assert log.record(denial(clock, "spooled denial")) is True
    assert wait_until(lambda: paths.spool.exists() and "spooled denial" in paths.spool.read_text())
    assert store.health.ok is False

    locked_store()
    assert wait_until(lambda: store.health.ok and not paths.spool.exists())
    assert [(r["outcome"], r["reason"]) for r in rows(store)] == [("deny", "spooled denial")]

    assert log.record(read(clock), durable=True) is True
    log.stop()
    report = verify_store(store, KEY, paths.checkpoints)
    assert report.ok and report.rows == 2


def test_failed_read_window_is_not_reused_after_recovery(log, store, clock, locked_store):
    calls: list[int] = []
    key = ("drnkosi", "s1")
    assert log.cover_read(key, counted_reads(clock, calls)) is None
    locked_store()
    assert wait_until(lambda: store.health.ok)
    assert log.cover_read(key, counted_reads(clock, calls)) is not None
    assert calls == [1, 1]
    assert len(rows(store)) == 1


# -- after stop (Orthanc still serves requests for a moment after ORTHANC_STOPPED) -----------------


def test_after_stop_a_caller_writes_its_own_record_at_once(new_log, store, clock, paths):
    log = new_log(wait_seconds=30)
    log.record(read(clock), durable=True)
    log.stop()
    started = time.monotonic()
    assert log.record(read(clock, study="s2"), durable=True)
    assert log.record(denial(clock))
    log.record_denial(("anonymous", "x"), "address 10.6.6.6", lambda: denial(clock, "late denial"))
    assert time.monotonic() - started < 5  # not wait_seconds for a writer that is gone
    assert [(r["orthanc_id"], r["outcome"]) for r in rows(store)] == [
        ("s1", "allow"), ("s2", "allow"), ("", "deny"), ("", "deny")]
    log.stop()  # again (at interpreter exit): signs what came after the first stop
    assert db_checkpoints(store)[-1]["audit_id"] == 4
    assert verify_store(store, KEY, paths.checkpoints).ok


def test_after_stop_each_read_gets_its_own_row_and_its_window_covers_no_repeat(log, store, clock):
    log.stop()
    key = ("drnkosi", "s1")
    for _ in range(2):
        window = log.cover_read(key, lambda: read(clock))
        assert window is not None and not window.repeat(clock())
    assert [r["count"] for r in rows(store)] == [1, 1]

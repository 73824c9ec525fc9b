"""The store: one SQLAlchemy engine, transactions, migrations and a view of the store's health."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from plugin.errors import BadRequest, StoreUnavailable

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schema"
# PostgreSQL text cannot hold NUL; SQLite's can. On PostgreSQL a bound text's NULs become U+FFFD, so
# a look-up of a name typed with one finds nothing (as on SQLite) rather than failing the store.
NUL, REPLACEMENT = "\x00", "\ufffd"
# Alembic upgrades on PostgreSQL hold this transaction-level advisory lock: nodes starting together
# (each upgrades at start) and `gatectl db-upgrade` run one after the other, never interleaved.
UPGRADE_LOCK = 0x6761_7465  # "gate"


def describe_store_error(exc: BaseException) -> str:
    """A one-line description of a store failure, without SQL, parameters or credentials."""
    orig = getattr(exc, "orig", None) or exc
    first_line = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return first_line[:200]


class StoreHealth:
    """Whether the last write reached the store; the gate refuses what needs it while it did not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ok = True
        self.error = ""

    def mark_ok(self) -> None:
        if not self.ok:
            with self._lock:
                self.ok, self.error = True, ""

    def mark_failed(self, exc: BaseException) -> None:
        with self._lock:
            self.ok, self.error = False, describe_store_error(exc)


class Store:
    def __init__(self, url: str, timeout_seconds: float = 5.0) -> None:
        self.url = url
        self.health = StoreHealth()
        self.engine = _make_engine(url, timeout_seconds)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        reads = self.engine.execution_options(gate_read=True)
        if self.engine.dialect.name == "postgresql":
            # One snapshot for the whole read, as SQLite's WAL gives: a reader walking the audit
            # chain while other nodes append sees the rows and the head of one moment.
            reads = reads.execution_options(isolation_level="REPEATABLE READ")
        self._read_sessions = sessionmaker(reads, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one write transaction: committed on success, rolled back on error.

        Store failures come out as StoreUnavailable so callers deal with one error type.
        """
        try:
            with self._sessions.begin() as session:
                yield session
        except DataError as exc:
            raise unstorable(exc) from exc
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"Store unavailable: {describe_store_error(exc)}") from exc

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads only, on one snapshot: it does not take SQLite's write lock."""
        try:
            with self._read_sessions.begin() as session:
                yield session
        except DataError as exc:
            raise unstorable(exc) from exc
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"Store unavailable: {describe_store_error(exc)}") from exc

    def probe(self) -> None:
        """Take and release the write lock: raises StoreUnavailable if the store cannot be written."""
        try:
            with self.engine.begin() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            self.health.mark_failed(exc)
            raise StoreUnavailable(f"Store unavailable: {describe_store_error(exc)}") from exc
        self.health.mark_ok()

    def upgrade(self) -> None:
        """Apply Alembic migrations up to the newest one."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(SCHEMA_DIR))
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"Store unavailable: {describe_store_error(exc)}") from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str, timeout_seconds: float) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Password hashes and the audit log live here: readable by the owner only. SQLite
            # gives its -wal and -shm files the same mode.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = create_engine(url, connect_args={"timeout": timeout_seconds, "check_same_thread": False})
        _sqlite_pragmas(engine, timeout_seconds)
        return engine
    engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": int(max(1, timeout_seconds))})
    if engine.dialect.name == "postgresql":
        _postgres_texts(engine)
    return engine


def unstorable(exc: DataError) -> BadRequest:
    """A value the database refused (longer than its column, say): the caller's input, not an outage."""
    return BadRequest(f"A value could not be stored: {describe_store_error(exc)}")


def without_nul(parameters: object) -> object:
    """Bound parameters (a mapping, a sequence, or a list of them) with NUL replaced in every text."""
    if isinstance(parameters, str):
        return parameters.replace(NUL, REPLACEMENT) if NUL in parameters else parameters
    if isinstance(parameters, dict):
        return {key: without_nul(value) for key, value in parameters.items()}
    if isinstance(parameters, (list, tuple)):
        return type(parameters)(without_nul(value) for value in parameters)
    return parameters


def _postgres_texts(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def on_execute(_conn, _cursor, statement, parameters, _context, _executemany):  # noqa: ANN001, ANN202
        return statement, without_nul(parameters)


def _sqlite_pragmas(engine: Engine, timeout_seconds: float) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 (DB-API objects)
        # Let SQLAlchemy, not pysqlite, issue BEGIN, so every write transaction takes the write lock
        # at its start (BEGIN IMMEDIATE) and two processes cannot both read the same audit head.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout_seconds * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn) -> None:  # noqa: ANN001
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("gate_read") else "BEGIN IMMEDIATE")

"""Fixtures for the unit tests: a fresh SQLite store per test, a hand-driven clock, cheap argon2."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from plugin.identity import secrets as gate_secrets
from plugin.store.db import Store

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z: a fixed "now" so expiry arithmetic is readable


class FakeClock:
    """A clock the test moves by hand; pass it where the code takes `clock=`."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gate.sqlite"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store migrated by Store.upgrade(), copied for each test (the migration costs ~25 ms a time)."""
    path = tmp_path_factory.mktemp("template") / "gate.sqlite"
    template = Store(sqlite_url(path))
    template.upgrade()
    template.dispose()
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def store(db_path: Path, migrated_template: Path) -> Iterator[Store]:
    """A migrated store in a temp file, with a short lock timeout so a held lock fails fast."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_template, db_path)
    opened = Store(sqlite_url(db_path), timeout_seconds=0.2)
    opened.upgrade()  # already at head: checks the copy is a migrated store
    yield opened
    opened.dispose()


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Still argon2id, but with tiny cost parameters: the production ones take ~0.2 s per call."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(gate_secrets, "_hasher", hasher)
    monkeypatch.setattr(gate_secrets, "_DUMMY_HASH", hasher.hash("not anybody's password"))

"""gatectl goes through the same account actions as the API (services/users.py): the same checks,
the same refusals, the same audit rows."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from contextlib import closing

from tests.harness import GATECTL, OrthancProcess


def store_rows(proc: OrthancProcess, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(sqlite3.connect(proc.database)) as db:
        return db.execute(sql, params).fetchall()


def test_gatectl_refuses_to_disable_the_last_admin(tmp_path):
    proc = OrthancProcess(tmp_path)  # gatectl works on the store: Orthanc need not run
    proc.create_user("root1", ["admin"], "admin password 123")
    proc.create_user("drnkosi", ["referring_doctor"])
    refused = proc.gatectl("disable-user", "root1", check=False)
    assert refused.returncode != 0 and "no enabled admin" in refused.stderr
    assert store_rows(proc, "SELECT disabled FROM users WHERE username='root1'") == [(0,)]
    proc.gatectl("disable-user", "drnkosi")
    assert store_rows(proc, "SELECT disabled FROM users WHERE username='drnkosi'") == [(1,)]
    proc.create_user("root2", ["admin"])
    proc.gatectl("disable-user", "root1")  # another admin is left now
    assert store_rows(proc, "SELECT disabled FROM users WHERE username='root1'") == [(1,)]


def test_gatectl_api_key_audit_row_names_the_key(tmp_path):
    proc = OrthancProcess(tmp_path)
    proc.create_user("drnkosi", ["referring_doctor"])
    printed = proc.gatectl("create-api-key", "viewer", "--user", "drnkosi").stdout
    key_id = int(re.search(r"API key (\d+) 'viewer'", printed).group(1))
    assert store_rows(proc, "SELECT id FROM api_keys WHERE name='viewer'") == [(key_id,)]
    [(actor, reason)] = store_rows(proc, "SELECT actor, reason FROM audit_events WHERE action='api_key.create'")
    assert actor == "gatectl" and reason == f"API key {key_id} 'viewer' for drnkosi"


def test_gatectl_refuses_what_the_api_refuses(tmp_path):
    proc = OrthancProcess(tmp_path)
    for name in (" rad1", "rad1 ", "ｒａｄ１"):
        refused = proc.gatectl("create-user", name, "--role", "radiologist", check=False)
        assert refused.returncode != 0 and "Usernames are" in refused.stderr, name
    assert store_rows(proc, "SELECT count(*) FROM users") == [(0,)]


def test_config_is_accepted_before_or_after_the_command_and_only_once(tmp_path):
    proc = OrthancProcess(tmp_path)
    config = str(proc.config_path)

    def gatectl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([GATECTL, *args], capture_output=True, text=True, timeout=120)

    before = gatectl("--config", config, "create-user", "rad1", "--role", "radiologist")
    after = gatectl("create-user", "rad2", "--role", "radiologist", "--config", config)
    assert before.returncode == 0 and after.returncode == 0, before.stderr + after.stderr
    assert gatectl("--config", config, "create-user", "rad3", "--role", "radiologist", "--config", config
                   ).returncode == 0  # the same file twice is the same file
    assert store_rows(proc, "SELECT username FROM users ORDER BY username") == [("rad1",), ("rad2",), ("rad3",)]
    (tmp_path / "other").mkdir()
    twice = gatectl("--config", str(tmp_path / "other"), "create-user", "rad4", "--role", "radiologist",
                    "--config", config)
    assert twice.returncode == 2 and "--config is given twice" in twice.stderr
    missing = gatectl("create-user", "rad5", "--role", "radiologist")
    assert missing.returncode == 2 and "--config is required" in missing.stderr
    assert store_rows(proc, "SELECT count(*) FROM users") == [(3,)]

"""A real PostgreSQL server (Debian's postgresql) for the tests and benches that run several
Orthanc nodes on one index and one Gate store.

Each PostgresServer is its own cluster (initdb) in its own temporary folder, listening on a free
port on 127.0.0.1 only, with its socket in that folder (the system's cluster and /var/run are never
used). PostgreSQL refuses to run as root, so the cluster belongs to the `postgres` account and the
server is started as that account directly (Popen's user=): the recorded PID is the postmaster's
own, and stop() signals that PID, never a name. Connections from 127.0.0.1 are trusted (a test
cluster reachable from this machine only).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness import PLUGINS, OrthancProcess, free_port, stop_by_pid

ACCOUNT = "postgres"
INDEX_PLUGIN = f"{PLUGINS}/libOrthancPostgreSQLIndex.so"


def create_database(port: int, name: str) -> None:
    """A new empty database on the server at 127.0.0.1:`port`, made by its trusted superuser."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, user=ACCOUNT, dbname="postgres", autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')


def database_url(port: int, name: str) -> str:
    """The Gate's DatabaseUrl for database `name` there (SQLAlchemy with psycopg 3)."""
    return f"postgresql+psycopg://{ACCOUNT}@127.0.0.1:{port}/{name}"


def postgres_bin() -> Path:
    """Debian's PostgreSQL binaries (the newest installed major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (scripts/install-system.sh installs Debian's postgresql)")
    return found[-1].parent


class PostgresServer:
    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.account = pwd.getpwnam(ACCOUNT)
        # Not under pytest's tmp folders: those are root's only, and the server runs as postgres.
        self.folder = Path(tempfile.mkdtemp(prefix="gate-pg-"))
        os.chown(self.folder, self.account.pw_uid, self.account.pw_gid)
        self.data = self.folder / "data"
        self.log_path = self.folder / "postgres.log"
        self.port = free_port()
        self.pid: int | None = None
        self._proc: subprocess.Popen | None = None
        self._as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", ACCOUNT, "--auth=trust",
                           "-E", "UTF8", "--locale=C.UTF-8"])

    def _as_postgres(self, args: list[str]) -> subprocess.CompletedProcess:
        result = subprocess.run(args, user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[],
                                cwd=self.folder, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr}")
        return result

    def start(self) -> PostgresServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        os.chown(self.log_path, self.account.pw_uid, self.account.pw_gid)
        self._proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.folder),
             "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "logging_collector=off"],
            user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[], cwd=self.folder,
            stdout=log, stderr=subprocess.STDOUT)
        self.pid = self._proc.pid
        deadline = time.time() + 30
        while time.time() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._proc.returncode}:\n{self.log_tail()}")
            ready = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not answer within 30 s:\n{self.log_tail()}")

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql as the superuser; its output (unaligned, tuples only)."""
        result = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", ACCOUNT, "-d", database,
                                 "-v", "ON_ERROR_STOP=1", "-At", "-c", statement],
                                capture_output=True, text=True, timeout=60, env=dict(os.environ, PGCONNECT_TIMEOUT="5"))
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr}")
        return result.stdout

    def create_database(self, name: str) -> None:
        create_database(self.port, name)

    def url(self, database: str) -> str:
        return database_url(self.port, database)

    def orthanc_section(self, database: str) -> dict:
        """The PostgreSQL section of Orthanc's configuration: the index in `database`, files on disk,
        no lock (several nodes share the index)."""
        return {"EnableIndex": True, "EnableStorage": False, "Host": "127.0.0.1", "Port": self.port,
                "Database": database, "Username": ACCOUNT, "Password": "", "Lock": False,
                "IndexConnectionsCount": 2}

    def node(self, root: Path, name: str, shared: Path, index: str, gate: dict) -> OrthancProcess:
        """An Orthanc node with the Gate (`gate`: its section) whose index is database `index` here
        and whose files are in shared/storage, with the other nodes of that index. Its own: the
        state folder (its audit spool) and the Web Viewer's cache (an SQLite file that one process
        at a time may open)."""
        node = OrthancProcess(root / name, gate={**gate, "StateDirectory": str(root / name / "state")})
        node.config.update({"Name": name, "StorageDirectory": str(shared / "storage"),
                            "IndexDirectory": str(shared / "storage"), "PostgreSQL": self.orthanc_section(index),
                            "WebViewer": {"CachePath": str(root / name / "webviewer-cache")}})
        node.config["Plugins"].append(INDEX_PLUGIN)
        node.write_config()
        return node

    def stop(self) -> None:
        """SIGINT to the recorded PID (PostgreSQL's fast shutdown), SIGKILL if it does not end."""
        stop_by_pid(self._proc, signal.SIGINT, 30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

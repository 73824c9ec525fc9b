"""Real processes for tests and benches: Orthanc (with or without the Gate) and gatectl.

Each Orthanc runs on free ports in its own temporary folder and is stopped by the PID recorded
when it was started, never by name.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[1]
ORTHANC = "/usr/sbin/Orthanc"
PLUGINS = "/usr/share/orthanc/plugins"
GATECTL = str(REPO / ".venv" / "bin" / "gatectl")
ENTRY = str(REPO / "plugin" / "entry.py")
# gatectl's own entry point, called once per command in one interpreter (OrthancProcess.gatectl_many).
GATECTL_BATCH = """
import contextlib, io, json, sys
from plugin.cli import main
outputs = []
for args, stdin in json.loads(sys.argv[1]):
    sys.stdin, out = io.StringIO(stdin or ""), io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(args)
    if code:
        sys.exit(f"gatectl {' '.join(args)}: exit {code}")
    outputs.append(out.getvalue())
print(json.dumps(outputs))
"""


# GATE_TEST_POSTGRES_PORT=<port>: every Gate test server whose test names no store gets a new
# database on the PostgreSQL server at 127.0.0.1:<port> (user postgres, trusted) instead of SQLite:
# the suite run against the store of a multi-node deployment (docs/deploy.md). Tests that open the
# SQLite file themselves fail there, by design.
POSTGRES_PORT = os.environ.get("GATE_TEST_POSTGRES_PORT", "")


def new_postgres_database(port: int) -> str:
    """A new empty database on the PostgreSQL server at 127.0.0.1:`port`; its Gate DatabaseUrl."""
    from tests.postgres_server import create_database, database_url  # it imports this module

    name = f"gate_{uuid.uuid4().hex[:16]}"
    create_database(port, name)
    return database_url(port, name)


def shared_keys(folder: Path) -> dict[str, str]:
    """Nodes sharing one Gate store share its keys too: both written root-only into `folder` (named
    key files must exist); the Gate settings that name them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, secret in (("audit.key", secrets.token_hex(32).encode()), ("contact.key", Fernet.generate_key())):
        (folder / name).write_bytes(secret)
        (folder / name).chmod(0o600)
    return {"AuditCheckpointKeyFile": str(folder / "audit.key"), "ContactKeyFile": str(folder / "contact.key")}


def stop_by_pid(proc: subprocess.Popen | None, signum: int, grace: float) -> None:
    """Send `signum` to a child still running, by the PID recorded when it was started (never by
    name); SIGKILL if it has not ended after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signum)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OrthancProcess:
    """One Orthanc server. `script` is the PythonScript (the Gate's entry.py by default; None for
    plain Orthanc without the Python plugin)."""

    def __init__(self, workdir: Path, gate: dict[str, Any] | None = None, script: str | None = ENTRY,
                 extra: dict[str, Any] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.script = script
        self.config_path = self.workdir / "orthanc.json"
        self.log_path = self.workdir / "orthanc.log"
        self.pid: int | None = None
        self._proc: subprocess.Popen | None = None
        config: dict[str, Any] = {
            "Name": "gate-test",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": True,
            "AuthenticationEnabled": False,
            "HttpDescribeErrors": False,
            "WebDavEnabled": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "Plugins": [f"{PLUGINS}/libOrthancDicomWeb.so", f"{PLUGINS}/libOrthancWebViewer.so"],
        }
        if script is not None:
            config["Plugins"].insert(0, f"{PLUGINS}/libOrthancPython.so")
            config["PythonScript"] = script
            config["Python"] = {"AllowThreads": True}  # as orthanc.json has it (Python plugin 4.3+)
            if script == ENTRY:
                config["Gate"] = dict(gate or {})
                if POSTGRES_PORT and "DatabaseUrl" not in config["Gate"]:
                    config["Gate"]["DatabaseUrl"] = new_postgres_database(int(POSTGRES_PORT))
        config.update(extra or {})
        self.config = config
        self.write_config()

    def write_config(self) -> None:
        self.config_path.write_text(json.dumps(self.config, indent=2))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self, wait: bool = True, timeout: float = 30.0) -> OrthancProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        env = dict(os.environ, TCP_NODELAY="1")
        self._proc = subprocess.Popen([ORTHANC, str(self.config_path)], cwd=self.workdir, stdout=log,
                                      stderr=subprocess.STDOUT, env=env)
        self.pid = self._proc.pid
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        probe = "/gate/health" if self.script == ENTRY else "/system"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                # 401: plain Orthanc with its own authentication on (tests/orthanc_suite.py)
                if requests.get(self.url(probe), timeout=1).status_code in (200, 401, 503):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Orthanc did not answer within {timeout} s:\n{self.log_tail()}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self._proc is not None
        return self._proc.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM to the recorded PID (Orthanc flushes and exits), SIGKILL if it does not."""
        stop_by_pid(self._proc, signal.SIGTERM, 20)

    @property
    def returncode(self) -> int | None:
        """The exit code once Orthanc has ended (None while it runs)."""
        return self._proc.poll() if self._proc is not None else None

    def kill9(self) -> None:
        assert self._proc is not None
        os.kill(self.pid, signal.SIGKILL)
        self._proc.wait(timeout=10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def gatectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([GATECTL, *args, "--config", str(self.config_path)], input=stdin,
                                capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"gatectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def gatectl_many(self, commands: list[tuple[list[str], str | None]]) -> list[str]:
        """Several gatectl commands (arguments, standard input) in one interpreter, one after the
        other, each as `gatectl` runs it; their outputs. Starting Python and the plugin's
        libraries costs about a second, which every test server would otherwise pay per command."""
        batch = [([*args, "--config", str(self.config_path)], stdin) for args, stdin in commands]
        result = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", GATECTL_BATCH, json.dumps(batch)],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"gatectl batch failed ({result.returncode}): {result.stderr}")
        return json.loads(result.stdout.splitlines()[-1])

    def create_user(self, name: str, roles: list[str], password: str | None = None,
                    must_change_password: bool = False) -> None:
        """A local user; with a password it need not change, unless told (tests use it at once)."""
        args = ["create-user", name]
        for role in roles:
            args += ["--role", role]
        if password is not None:
            args.append("--password-stdin")
            if not must_change_password:
                args.append("--no-password-change")
        self.gatectl(*args, stdin=(password + "\n") if password is not None else None)

    def create_api_key(self, name: str, user: str) -> str:
        return self.gatectl("create-api-key", name, "--user", user).stdout.strip().splitlines()[-1]

    @property
    def database(self) -> Path:
        return self.workdir / "storage" / "gate.sqlite"

    @property
    def database_url(self) -> str:
        """The Gate store's SQLAlchemy URL."""
        return self.config.get("Gate", {}).get("DatabaseUrl") or f"sqlite:///{self.database}"


def storescu(port: int, files: list[Path], aet: str = "STORESCU") -> subprocess.CompletedProcess:
    """Push files with DCMTK's storescu (-nh: carry on past a refused file)."""
    env = dict(os.environ, TCP_NODELAY="1")
    return subprocess.run(["storescu", "-nh", "-aet", aet, "-aec", "ORTHANC", "127.0.0.1", str(port),
                           *map(str, files)], capture_output=True, text=True, env=env, timeout=300)

"""Build the image and start it, on a machine with no Docker engine that cannot pull images.

1. A local base image is made from the 1.12 lane's Debian 13 root (var/lane-1.12/root, made by
   `make test-1.12`): Orthanc 1.12 and the Python plugin 5 from Debian's packages, in place of
   orthancteam/orthanc (which cannot be pulled here).
2. buildah builds the repository's Dockerfile on that base (--build-arg ORTHANC_IMAGE).
3. podman runs the image's gate-init (keys, migrations, the first admin) and then Orthanc with the
   image's own /etc/orthanc/orthanc-gate.json, against a PostgreSQL started here
   (tests/postgres_server.py). Debian's plugin paths and the ports are added in a second file,
   as the orthancteam image's entrypoint would add its own. The container uses the host network.
4. It checks what a newcomer would: /gate/health answers 200, the sign-in page is served, Orthanc's
   routes refuse a caller who is not signed in, and the first admin signs in with the password
   gate-init printed.

docs/deploy.md says what this proves and what it does not. Needs root. Run by hand:
    .venv/bin/python scripts/image_check.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from tests.harness import free_port  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402

LANE_ROOT = REPO / "var" / "lane-1.12" / "root"
BASE = "localhost/gate-lane-base:trixie"
IMAGE = "localhost/orthanc-gate:check"
# What the base needs no copy of: the lane's own checkout, browsers, documentation, caches.
BASE_EXCLUDES = ("./opt/gate", "./opt/oe2", "./usr/lib/chromium", "./usr/share/doc", "./var/cache/apt",
                 "./proc", "./dev", "./sys", "./tmp")
DEBIAN_PLUGINS = "/usr/share/orthanc/plugins"
# This sandbox mixes cgroup v1 and v2, which crun refuses: runc with cgroupfs works, and the
# container's limits must stay within this process's own (podman's defaults exceed them).
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]
TOOLS = ("buildah", "podman", "runc")


def install_tools() -> None:
    missing = [tool for tool in TOOLS if subprocess.run(["which", tool], capture_output=True).returncode]
    if missing:
        run("apt-get", "update", "-qq")
        run("apt-get", "install", "-y", "-qq", *missing)


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    print("+ " + " ".join(args), flush=True)
    return subprocess.run(args, check=True, text=True, **kwargs)


def make_base() -> None:
    if not (LANE_ROOT / ".gate-lane-ready").exists():
        sys.exit("no 1.12 lane root: run `make test-1.12` first (it makes var/lane-1.12/root)")
    if subprocess.run(["podman", "image", "exists", BASE]).returncode == 0:
        return
    tar = subprocess.Popen(["tar", "-C", str(LANE_ROOT), "--one-file-system",
                            *[f"--exclude={path}" for path in BASE_EXCLUDES], "-cf", "-", "."],
                           stdout=subprocess.PIPE)
    # pip inside the build reaches the package registry through this machine's certificate authority
    # (the lane copied it into the root).
    run("podman", "import", "--change", "ENV PIP_CERT=/etc/gate-lane-ca.crt", "-", BASE, stdin=tar.stdout)
    if tar.wait() != 0:
        sys.exit("tar of the lane root failed")


def build() -> None:
    run("buildah", "bud", "--isolation", "chroot", "--network", "host", "--layers", "--format", "docker",
        "--build-arg", f"ORTHANC_IMAGE={BASE}", "-t", IMAGE, "-f", "Dockerfile", ".", cwd=REPO)


def start_node(postgres: PostgresServer, keys: Path, port: int, dicom_port: int) -> subprocess.Popen:
    """Orthanc in the image with its own orthanc-gate.json and Debian's plugin paths beside it."""
    local = json.dumps({
        "Plugins": [f"{DEBIAN_PLUGINS}/{name}" for name in ("libOrthancPython.so", "libOrthancPostgreSQLIndex.so",
                                                            "libOrthancDicomWeb.so")],
        "HttpPort": port, "DicomPort": dicom_port, "PostgreSQL": {**postgres.orthanc_section("orthanc"),
                                                                  "IndexConnectionsCount": 1}})
    script = ("mkdir -p /run/orthanc && cp /etc/orthanc/orthanc-gate.json /run/orthanc/ && "
              f"echo '{local}' >/run/orthanc/local.json && exec /usr/sbin/Orthanc /run/orthanc")
    return subprocess.Popen([*PODMAN, "run", "--rm", *LIMITS, "--network", "host", *environment(postgres),
                             "-v", f"{keys}:/var/lib/orthanc-gate/keys", IMAGE, "/bin/sh", "-c", script])


def environment(postgres: PostgresServer) -> list[str]:
    return ["-e", f"GATE_DATABASE_URL={postgres.url('gate')}", "-e", "GATE_PUBLIC_URL=http://localhost",
            "-e", "GATE_TRUSTED_PROXY=127.0.0.1"]


def main() -> int:
    install_tools()
    make_base()
    build()
    run(*PODMAN, "run", "--rm", *LIMITS, IMAGE, "/opt/orthanc-gate/.venv/bin/python", "-c",
        "import sys, plugin.cli, psycopg; print('image venv:', sys.version.split()[0], 'psycopg', psycopg.__version__)")
    postgres = PostgresServer().start()
    try:
        postgres.create_database("orthanc")
        postgres.create_database("gate")
        with tempfile.TemporaryDirectory(prefix="gate-image-") as tmp:
            keys = Path(tmp) / "keys"
            keys.mkdir()
            init = run(*PODMAN, "run", "--rm", *LIMITS, "--network", "host", *environment(postgres),
                       "-v", f"{keys}:/var/lib/orthanc-gate/keys", "--entrypoint", "/opt/orthanc-gate/gate-init.sh",
                       IMAGE, capture_output=True)
            print(init.stdout + init.stderr)
            found = re.search(r"username:\s*(\S+)\s+one-time password:\s*(\S+)", init.stdout)
            port, dicom_port = free_port(), free_port()
            node = start_node(postgres, keys, port, dicom_port)
            try:
                checks = check_node(f"http://127.0.0.1:{port}", found)
            finally:
                stop(node)  # before its keys folder goes
    finally:
        postgres.remove()
    for what, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return 0 if all(checks.values()) else 1


def check_node(base: str, first_admin: re.Match | None) -> dict[str, bool]:
    """What a newcomer meets first, each named with whether it held."""
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if requests.get(base + "/gate/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    checks = {
        "/gate/health answers 200": requests.get(base + "/gate/health", timeout=10).status_code == 200,
        "the sign-in page is served": requests.get(base + "/gate/login", timeout=10).status_code == 200,
        "Orthanc refuses a caller not signed in":
            requests.get(base + "/patients", timeout=10).status_code in (401, 403),
        "gate-init printed the first admin's password": first_admin is not None,
    }
    if first_admin is not None:
        signed = requests.post(base + "/gate/login", timeout=10,
                               json={"username": first_admin.group(1), "password": first_admin.group(2)})
        print(f"first sign-in: {signed.status_code} {signed.text[:200]}")
        checks["the first admin signs in with gate-init's password"] = signed.status_code == 200
    return checks


def stop(node: subprocess.Popen) -> None:
    """SIGTERM through podman (it passes it on to Orthanc, which stops cleanly)."""
    if node.poll() is None:
        node.terminate()
        node.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())

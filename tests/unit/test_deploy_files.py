"""The deployment files agree with each other and with the Gate (docs/deploy.md): what no machine
here can run (docker compose) is at least checked for the mistakes that would only show in a
practice. The compose file was also checked once by hand against the compose specification's JSON
schema (not shipped here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from plugin.config import _BY_NAME, read_orthanc_config

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
NODES = ("orthanc-a", "orthanc-b")


def _volumes(service: str) -> dict[str, str]:
    """mount point -> volume name."""
    return {spec.split(":")[1]: spec.split(":")[0] for spec in SERVICES[service].get("volumes", [])}


def test_nodes_share_storage_and_keys_and_keep_their_own_state():
    mounts = {node: _volumes(node) for node in NODES}
    for shared in ("/var/lib/orthanc/db", "/var/lib/orthanc-gate/keys"):
        assert len({mounts[node][shared] for node in NODES}) == 1, shared
    states = [mounts[node]["/var/lib/orthanc-gate/state"] for node in NODES]
    assert len(set(states)) == len(NODES)  # each node's audit spool is its own
    assert _volumes("gate-init")["/var/lib/orthanc-gate/keys"] == mounts["orthanc-a"]["/var/lib/orthanc-gate/keys"]


def test_the_gate_reads_the_folders_the_compose_file_mounts(monkeypatch):
    monkeypatch.setenv("GATE_DATABASE_URL", "postgresql+psycopg://gate@postgres/gate")
    configuration = read_orthanc_config(REPO / "deploy" / "orthanc-gate.json")
    gate = configuration["Gate"]
    assert set(gate) <= set(_BY_NAME)  # no key the Gate would refuse at start
    mounted = set(_volumes("orthanc-a"))
    assert configuration["StorageDirectory"] in mounted
    assert gate["StateDirectory"] in mounted
    for key in ("AuditCheckpointKeyFile", "ContactKeyFile"):
        assert str(Path(gate[key]).parent) in mounted, key
    assert configuration["AuthenticationEnabled"] is False and configuration["DicomAlwaysAllowStore"] is False


def test_the_only_trusted_proxy_is_the_proxy_at_its_fixed_address():
    address = SERVICES["proxy"]["networks"]["gate"]["ipv4_address"]
    subnet = COMPOSE["networks"]["gate"]["ipam"]["config"][0]["subnet"]
    assert address.rsplit(".", 1)[0] == subnet.split("/")[0].rsplit(".", 1)[0]
    for node in NODES:
        assert SERVICES[node]["environment"]["GATE_TRUSTED_PROXY"] == address


def test_the_proxy_sends_to_every_node_and_replaces_x_forwarded_for():
    nginx = (REPO / "deploy" / "nginx.conf").read_text()
    assert set(re.findall(r"server (\S+):8042", nginx)) == set(NODES)
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx
    assert "$proxy_add_x_forwarded_for" not in nginx  # appending would let a browser forge its address


def test_every_secret_file_is_made_by_make_secrets():
    script = (REPO / "deploy" / "make-secrets.sh").read_text()
    made = set(re.findall(r"secrets/([\w.]+)", script))
    made |= set(re.search(r"for name in ([\w ]+); do", script).group(1).split())
    assert {Path(secret["file"]).name for secret in COMPOSE["secrets"].values()} <= made
    assert "deploy/secrets/" in (REPO / ".gitignore").read_text()


@pytest.mark.parametrize("line", [line for line in (REPO / "Dockerfile").read_text().splitlines()
                                  if line.startswith("COPY ")])
def test_what_the_dockerfile_copies_is_in_the_repository(line):
    source = line.split()[1]
    assert (REPO / source).exists(), source
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert source not in ignored


def test_the_base_image_is_pinned():
    base = re.search(r"^ARG ORTHANC_IMAGE=(\S+)$", (REPO / "Dockerfile").read_text(), re.M).group(1)
    assert re.fullmatch(r"orthancteam/orthanc:\d+\.\d+\.\d+", base), base

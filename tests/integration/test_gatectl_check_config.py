"""`gatectl check-config FILE`, the installed command: a configuration checked before Orthanc is
started with it, with no store and no Orthanc; OK, or each problem as KEY: message (exit 1)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.harness import GATECTL, REPO, OrthancProcess


def check_config(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GATE_HOME"}
    return subprocess.run([GATECTL, "check-config", str(path)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


def test_the_shipped_configuration_is_ok_from_any_folder(tmp_path: Path):
    done = check_config(REPO / "orthanc.json", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"OK: {REPO / 'orthanc.json'}" and done.stderr == ""


def test_a_typo_in_a_gate_key_is_named_and_nothing_is_made(tmp_path: Path):
    server = OrthancProcess(tmp_path / "orthanc")  # the harness's own configuration, then a typo in it
    server.config["Gate"]["SessionIdleMinuts"] = 30
    server.write_config()
    done = check_config(server.config_path, tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("Gate.SessionIdleMinuts: Unknown key in the Gate section"), done.stderr
    assert not (tmp_path / "orthanc" / "storage").exists()  # no store was opened or made


def test_bad_json_is_placed_at_its_line_and_column(tmp_path: Path):
    text = (REPO / "orthanc.json").read_text().replace('"HttpPort": 8042,', '"HttpPort": 8042')
    line = next(n for n, row in enumerate(text.splitlines(), 1) if '"RemoteAccessAllowed"' in row)
    (tmp_path / "orthanc.json").write_text(text)
    done = check_config(tmp_path / "orthanc.json", tmp_path)
    assert done.returncode == 1
    assert f"not valid JSON at line {line}, column 3" in done.stderr, done.stderr
    assert done.stderr.startswith(f"{tmp_path / 'orthanc.json'}: ")  # no key: the file as a whole


def test_a_missing_plugin_file_is_named(tmp_path: Path):
    server = OrthancProcess(tmp_path / "orthanc")
    server.config["Plugins"][0] = "/usr/share/orthanc/plugins/libOrthancPythn.so"
    server.write_config()
    done = check_config(server.config_path, tmp_path)
    assert done.returncode == 1
    problems = done.stderr.splitlines()
    assert "Plugins: Plugin not found: /usr/share/orthanc/plugins/libOrthancPythn.so (Orthanc would start " \
           "without it)" in problems, problems


def test_every_problem_is_given_one_a_line(tmp_path: Path):
    server = OrthancProcess(tmp_path / "orthanc")
    server.config.update({"DicomPort": 0, "AuthenticationEnabled": True})
    server.config["Gate"]["Ldap"] = {"BindPasswordFile": "ldap-bind.secret"}
    server.write_config()
    done = check_config(server.config_path, tmp_path)
    assert done.returncode == 1
    keys = [row.split(": ", 1)[0] for row in done.stderr.splitlines()]
    assert keys == ["DicomPort", "AuthenticationEnabled", "Gate.Ldap.BindPasswordFile", "Gate.Ldap.Servers"], \
        done.stderr
    assert json.loads(server.config_path.read_text())["DicomPort"] == 0  # the file is only read

"""services/server_config.py: the effective configuration with no secret in it, and the check of a
configuration file (also `gatectl check-config`), each problem naming its key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugin import cli
from plugin.services.server_config import REDACTED, check_config_file, redacted_configuration

REPO = Path(__file__).resolve().parents[2]
SECRETS = ["orthanc-user-pw", "peer-pw-list", "peer-pw-dict", "dicomweb-pw", "pg-pw", "sms-token", "bearer-xyz",
           "ldap-bind-pw", "api-key-1", "smtp-pw", "webhook-secret", "cookie-abc"]


def configuration_with_secrets() -> dict:
    return {
        "Name": "PACS", "HttpPort": 8042, "AuthenticationEnabled": True,
        "RegisteredUsers": {"alice": "orthanc-user-pw"},
        "OrthancPeers": {"a": ["http://peer-a:8042/", "alice", "peer-pw-list"],
                         "b": {"Url": "http://peer-b:8042/", "Username": "bob", "Password": "peer-pw-dict",
                               "HttpHeaders": {"Authorization": "bearer-xyz"}}},
        "DicomWeb": {"Servers": {"c": ["https://user:dicomweb-pw@pacs.example/dicom-web/", "user", "dicomweb-pw"]}},
        "PostgreSQL": {"Host": "db", "Password": "pg-pw"},
        "Webhook": {"Secret": "webhook-secret", "Cookie": "cookie-abc"},
        "Gate": {"DatabaseUrl": "postgresql://gate:pg-pw@db/gate", "PracticeName": "Practice",
                 "Sms": {"Headers": {"X-Token": "sms-token"}, "ApiKey": "api-key-1"},
                 "Ldap": {"BindPassword": "ldap-bind-pw", "BindPasswordFile": "/etc/gate/ldap.pw",
                          "Servers": ["ldaps://dc1.example"]},
                 "Smtp": {"Password": "smtp-pw", "PasswordFile": "/etc/gate/smtp.pw"}},
    }


def test_no_secret_survives_anywhere():
    configuration = configuration_with_secrets()
    text = json.dumps(redacted_configuration(configuration))
    for secret in SECRETS:
        assert secret not in text, secret
    assert configuration["RegisteredUsers"]["alice"] == "orthanc-user-pw"  # the input is left alone


def test_what_is_no_secret_stays_readable():
    shown = redacted_configuration(configuration_with_secrets())
    assert shown["Name"] == "PACS" and shown["HttpPort"] == 8042 and shown["AuthenticationEnabled"] is True
    assert shown["RegisteredUsers"] == {"alice": REDACTED}
    assert shown["OrthancPeers"]["a"] == ["http://peer-a:8042/", "alice", REDACTED]
    assert shown["OrthancPeers"]["b"]["Username"] == "bob"
    assert shown["Gate"]["DatabaseUrl"] == f"postgresql://gate:{REDACTED}@db/gate"
    assert shown["Gate"]["Ldap"]["BindPasswordFile"] == "/etc/gate/ldap.pw"  # a path is not the secret
    assert shown["Gate"]["Ldap"]["Servers"] == ["ldaps://dc1.example"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orthanc.json"
    path.write_text(text)
    return path


def test_the_shipped_configuration_checks_clean():
    assert check_config_file(REPO / "orthanc.json").ok


@pytest.mark.parametrize("text, key, words", [
    ('{"Gate": {"SessionIdleMinuts": 30}}', "Gate.SessionIdleMinuts", "Unknown key"),
    ('{"Gate": {"SessionIdleMinutes": "thirty"}}', "Gate.SessionIdleMinutes", "must be a number"),
    ('{"Gate": {"Shares": {"Enabld": true}}}', "Gate.Shares.Enabld", "Unknown key"),
    ('{"HttpPort": 70000}', "HttpPort", "port number"),
    ('{"Plugins": ["/no/such/libOrthancPython.so"]}', "Plugins", "not found"),
    ('{"PythonScript": "missing.py"}', "PythonScript", "not found"),
    ('{"Gate": {', "", "line 1"),
])
def test_a_bad_configuration_names_its_key(tmp_path: Path, text: str, key: str, words: str):
    check = check_config_file(write(tmp_path, text))
    assert not check.ok
    assert any(p.key == key and words in p.message and p.message[0].isupper() for p in check.problems), check


def test_comments_are_read_as_orthanc_reads_them(tmp_path: Path):
    assert check_config_file(write(tmp_path, '{\n  // a comment\n  "Name": "x" /* another */\n}')).ok


def test_gatectl_check_config_needs_no_store_and_says_ok_or_each_problem(tmp_path: Path, capsys):
    assert cli.main(["check-config", str(REPO / "orthanc.json")]) == 0
    assert capsys.readouterr().out.startswith("OK: ")
    bad = write(tmp_path, '{"Gate": {"LockoutMinuts": 5}, "DicomPort": 0}')
    assert cli.main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "Gate.LockoutMinuts: " in err and "DicomPort: " in err

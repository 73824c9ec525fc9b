"""services/server_config.py: the effective configuration with no secret in it, and the check of a
configuration file (also `gatectl check-config`), each problem naming its key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugin import cli
from plugin.services.server_config import REDACTED, check_config_file, is_secret_name, redacted_configuration
from tests.harness import ENTRY, OrthancProcess

REPO = Path(__file__).resolve().parents[2]
SECRETS = ["orthanc-user-pw", "peer-pw-list", "peer-pw-dict", "dicomweb-pw", "pg-pw", "sms-token", "bearer-xyz",
           "ldap-bind-pw", "api-key-1", "smtp-pw", "webhook-secret", "cookie-abc", "cert-key-pw", "s3-access",
           "s3-secret", "azure-account-key", "odbc-pwd", "query-token", "body-key", "key-one", "key-two",
           "private-key-pem", "dicomweb-hdr", "proxy-pw", "dicomweb-list-pw", "plain-key", "oauth-secret",
           "mapped-token", "auth-plugin-pw"]


def configuration_with_secrets() -> dict:
    """A secret in each place a configuration may hold one (Orthanc's keys, its plugins' and the Gate's)."""
    return {
        "Name": "PACS", "HttpPort": 8042, "AuthenticationEnabled": True,
        "RegisteredUsers": {"alice": "orthanc-user-pw"},
        "HttpProxy": "http://proxyuser:proxy-pw@proxy.example:3128",
        "OrthancPeers": {"a": ["http://peer-a:8042/", "alice", "peer-pw-list"],
                         "b": {"Url": "http://peer-b:8042/", "Username": "bob", "Password": "peer-pw-dict",
                               "HttpHeaders": {"Authorization": "bearer-xyz"},
                               "CertificateFile": "/etc/peer.pem", "CertificateKeyPassword": "cert-key-pw"}},
        "DicomModalities": {"ct": {"AET": "CT1", "Host": "10.0.0.5", "Port": 104}},
        "DicomWeb": {"Servers": {"c": ["https://user:dicomweb-pw@pacs.example/dicom-web/", "user", "dicomweb-list-pw"],
                                 "d": {"Url": "https://pacs.example/", "HttpHeaders": {"X-Api": "dicomweb-hdr"}}}},
        "PostgreSQL": {"Host": "db", "Password": "pg-pw"},
        "AwsS3Storage": {"AccessKey": "s3-access", "SecretKey": "s3-secret", "BucketName": "images"},
        "AzureBlobStorage": {"ConnectionString": "DefaultEndpointsProtocol=https;AccountName=acct;"
                                                 "AccountKey=azure-account-key;EndpointSuffix=core.windows.net"},
        "Odbc": {"IndexConnectionString": "DSN=orthanc;UID=orthanc;PWD=odbc-pwd"},
        "Notifier": {"Url": "https://hooks.example/notify?channel=pacs&token=query-token", "Key": "plain-key"},
        "DicomTlsPrivateKey": "private-key-pem",
        "Webhook": {"Secret": "webhook-secret", "Cookie": "cookie-abc", "ApiKeys": ["key-one", "key-two"],
                    "Tokens": {"reporting": "mapped-token"}},
        "Authorization": {"WebServiceRootUrl": "http://auth.example/", "WebServiceUsername": "svc",
                          "Login": {"svc": "auth-plugin-pw"}, "CheckedLevel": "studies"},
        "OrthancExplorer2": {"Keycloak": {"Enable": True, "Url": "https://sso.example/",
                                          "ClientSecret": "oauth-secret"}},
        "Gate": {"DatabaseUrl": "postgresql://gate:pg-pw@db/gate", "PracticeName": "Practice",
                 "Sms": {"Gateway": "generic", "Headers": {"X-Token": "sms-token"}, "ApiKey": "api-key-1",
                         "Body": '{"to": "{to}", "text": "{text}", "apiKey": "body-key"}', "ApiKeyFile": "sms.key"},
                 "Ldap": {"BindPassword": "ldap-bind-pw", "BindPasswordFile": "/etc/gate/ldap.pw",
                          "Servers": ["ldaps://dc1.example"]},
                 "Smtp": {"Password": "smtp-pw", "PasswordFile": "/etc/gate/smtp.pw"},
                 "ContactPreviousKeyFiles": ["/etc/gate/contact-2025.key"]},
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
    assert shown["Gate"]["ContactPreviousKeyFiles"] == ["/etc/gate/contact-2025.key"]
    assert shown["Gate"]["Sms"]["ApiKeyFile"] == "sms.key"
    assert shown["Gate"]["Ldap"]["Servers"] == ["ldaps://dc1.example"]
    assert shown["OrthancPeers"]["b"]["HttpHeaders"] == {"Authorization": REDACTED}
    assert shown["OrthancPeers"]["b"]["CertificateFile"] == "/etc/peer.pem"
    assert shown["DicomModalities"] == {"ct": {"AET": "CT1", "Host": "10.0.0.5", "Port": 104}}
    assert shown["OrthancExplorer2"]["Keycloak"]["Enable"] is True  # Keycloak is no key
    assert shown["AwsS3Storage"]["BucketName"] == "images"
    assert shown["Notifier"]["Url"] == f"https://hooks.example/notify?channel=pacs&token={REDACTED}"
    assert shown["HttpProxy"] == f"http://proxyuser:{REDACTED}@proxy.example:3128"
    assert "AccountName=acct;" in shown["AzureBlobStorage"]["ConnectionString"]
    assert shown["Webhook"]["ApiKeys"] == [REDACTED, REDACTED]
    assert shown["Webhook"]["Tokens"] == {"reporting": REDACTED}  # below a secret's name, all is secret
    assert shown["OrthancExplorer2"]["Keycloak"]["Url"] == "https://sso.example/"


@pytest.mark.parametrize("name, secret", [
    ("Password", True), ("BindPassword", True), ("ApiKey", True), ("api_key", True), ("SecretKey", True),
    ("PrivateKey", True), ("Key", True), ("Token", True), ("AuthToken", True), ("Credentials", True),
    ("PASSWORD", True), ("BindPasswordFile", False), ("ContactKeyFile", False), ("ContactPreviousKeyFiles", False),
    ("Keycloak", False), ("KeepAlive", False), ("Username", False), ("Url", False), ("HttpPort", False),
    ("PasswordFailures", False), ("PasswordLockMinutes", False), ("TokenValiditySeconds", False),
    ("AuthorizationHeader", True), ("TokenHttpHeaders", True),
])
def test_a_secret_is_known_by_the_words_of_its_name(name: str, secret: bool):
    assert is_secret_name(name) is secret


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orthanc.json"
    path.write_text(text)
    return path


def test_the_shipped_configuration_checks_clean():
    assert check_config_file(REPO / "orthanc.json").ok


@pytest.mark.parametrize("options", [
    {}, {"script": None},
    {"gate": {"MfaRequiredRoles": [], "LockoutFailures": 100000}, "extra": {"WebDavEnabled": True}},
    {"gate": {"MfaRequiredRoles": ["admin"]}, "extra": {
        "RegisteredUsers": {"alice": "x"}, "OrthancPeers": {"other": ["http://127.0.0.1:9/", "peer", "y"]},
        "DicomWeb": {"Enable": True, "Servers": {"remote": {"Url": "http://127.0.0.1:9/dicom-web/"}}}}},
])
def test_every_configuration_the_test_harness_writes_checks_clean(tmp_path: Path, options: dict):
    server = OrthancProcess(tmp_path, **options)  # writes its orthanc.json; starts nothing
    assert check_config_file(server.config_path).problems == []


@pytest.mark.parametrize("text, key, words", [
    ('{"Gate": {"SessionIdleMinuts": 30}}', "Gate.SessionIdleMinuts", "Unknown key"),
    ('{"Gate": {"SessionIdleMinutes": "thirty"}}', "Gate.SessionIdleMinutes", "must be a number"),
    ('{"Gate": {"Shares": {"Enabld": true}}}', "Gate.Shares.Enabld", "Unknown key"),
    ('{"HttpPort": 70000}', "HttpPort", "port number"),
    ('{"Plugins": ["/no/such/libOrthancPython.so"]}', "Plugins", "not found"),
    ('{"PythonScript": "missing.py"}', "PythonScript", "not found"),
    ('{"PythonScript": "entry.txt"}', "PythonScript", ".py file"),
    ('{"Gate": {', "", "line 1"),
    ('{\n  /* two\n  lines */ "Name": "x",\n  "HttpPort": 8042\n  "DicomPort": 4242\n}', "", "line 5, column 3"),
    ('["not", "an", "object"]', "", "JSON object"),
    ('{"DicomPort": "4242"}', "DicomPort", "port number"),
    ('{"AuthenticationEnabled": "false"}', "AuthenticationEnabled", "true or false"),
    ('{"StorageDirectory": 5}', "StorageDirectory", "must be a string"),
    ('{"RegisteredUsers": ["alice"]}', "RegisteredUsers", "user names to passwords"),
    ('{"DicomModalities": {"reading room": ["RR", "10.0.0.2", 104]}}', "DicomModalities.reading room", "letters"),
    ('{"SslEnabled": true, "SslCertificate": "no-such.pem"}', "SslCertificate", "not found"),
    ('{"Gate": {}, "AuthenticationEnabled": true}', "AuthenticationEnabled", "must be false with the Gate"),
    ('{"Gate": {}, "RemoteAccessAllowed": true}', "AuthenticationEnabled", "left out"),
    ('{"Gate": {}}', "PythonScript", "without the Gate"),
    (json.dumps({"Gate": {}, "PythonScript": ENTRY, "Plugins": []}), "Plugins", "No Python plugin"),
    ('{"Gate": {"Ldap": {"BindPasswordFile": "nowhere.pw"}}}', "Gate.Ldap.BindPasswordFile", "File not found"),
    ('{"Gate": {"ContactKeyFile": "."}}', "Gate.ContactKeyFile", "Not a file"),
    ('{"Gate": {"ContactPreviousKeyFiles": ["old.key"]}}', "Gate.ContactPreviousKeyFiles", "File not found"),
    ('{"Gate": {"Sms": {"Gateway": "clickatell", "ApiKeyFile": "sms.key"}}}', "Gate.Sms.ApiKeyFile", "not found"),
])
def test_a_bad_configuration_names_its_key(tmp_path: Path, text: str, key: str, words: str):
    check = check_config_file(write(tmp_path, text))
    assert not check.ok
    assert any(p.key == key and words in p.message and p.message[0].isupper() for p in check.problems), check


def test_every_named_file_that_is_missing_is_named_not_only_the_first(tmp_path: Path):
    check = check_config_file(write(tmp_path, json.dumps({"Gate": {
        "AuditCheckpointKeyFile": "a.key", "Smtp": {"Host": "mail", "From": "a@b.example", "Username": "u",
                                                     "PasswordFile": "smtp.pw"}}})))
    assert {p.key for p in check.problems} >= {"Gate.AuditCheckpointKeyFile", "Gate.Smtp.PasswordFile"}


def test_a_named_file_this_process_cannot_read_is_a_problem(tmp_path: Path, monkeypatch):
    (tmp_path / "ldap.pw").write_text("secret\n")
    real_open = Path.open

    def refused(self: Path, *args, **kwargs):  # root reads any file: refuse this one as a non-root user is
        if self.name == "ldap.pw":
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refused)
    check = check_config_file(write(tmp_path, json.dumps({"Gate": {"Ldap": {"BindPasswordFile": "ldap.pw"}}})))
    assert any(p.key == "Gate.Ldap.BindPasswordFile" and "cannot be read" in p.message for p in check.problems)


def test_a_folder_with_a_key_in_two_files_is_refused_as_orthanc_refuses_it(tmp_path: Path):
    (tmp_path / "a.json").write_text('{"Name": "a"}')
    (tmp_path / "b.json").write_text('{"Name": "b"}')
    check = check_config_file(tmp_path)
    assert not check.ok and "Name is also in another file" in check.problems[0].message


def test_comments_are_read_as_orthanc_reads_them(tmp_path: Path):
    assert check_config_file(write(tmp_path, '{\n  // a comment\n  "Name": "x" /* another */\n}')).ok


def test_gatectl_check_config_needs_no_store_and_says_ok_or_each_problem(tmp_path: Path, capsys):
    assert cli.main(["check-config", str(REPO / "orthanc.json")]) == 0
    assert capsys.readouterr().out.startswith("OK: ")
    bad = write(tmp_path, '{"Gate": {"LockoutMinuts": 5}, "DicomPort": 0}')
    assert cli.main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "Gate.LockoutMinuts: " in err and "DicomPort: " in err

"""The Gate section of Orthanc's configuration: defaults, validation, file reading, secret files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from plugin.config import (
    DicomWebSettings,
    config_base,
    dicomweb_settings,
    ensure_secret_file,
    holds_python_lock,
    load_gate_config,
    open_to_any_modality,
    read_orthanc_config,
    strip_json_comments,
    substitute_variables,
)
from plugin.errors import ConfigError


def gate(section: dict, **orthanc: object) -> dict:
    return {"Gate": section, **orthanc}


# -- defaults ------------------------------------------------------------------------------------


def test_defaults(tmp_path):
    config = load_gate_config({}, tmp_path)
    state = (tmp_path / "OrthancStorage").resolve()
    assert config.state_directory == state
    assert config.database_url == f"sqlite:///{state / 'gate.sqlite'}"
    assert config.database_timeout_seconds == 5.0
    assert (config.session_idle_minutes, config.session_max_hours) == (30.0, 12.0)
    assert config.secure_cookies is False
    assert (config.identity_cache_seconds, config.basic_credential_cache_seconds,
            config.decision_cache_seconds) == (2.0, 60.0, 1.0)
    assert (config.audit_coalesce_seconds, config.audit_checkpoint_seconds) == (60.0, 300.0)
    assert config.audit_checkpoint_key_file == state / "gate-audit-checkpoint.key"
    assert config.audit_checkpoint_key_generated
    assert config.contact_key_file == state / "gate-contact.key"
    assert config.contact_key_generated
    assert config.home_page == "/app/explorer.html"
    assert config.audit_spool_file == state / "gate-audit.spool"


def test_numbers_come_out_as_floats(tmp_path):
    config = load_gate_config(gate({"SessionIdleMinutes": 5}), tmp_path)
    assert config.session_idle_minutes == 5.0 and isinstance(config.session_idle_minutes, float)


def test_secure_cookies_follow_ssl_unless_set(tmp_path):
    assert load_gate_config({"SslEnabled": True}, tmp_path).secure_cookies is True
    assert load_gate_config(gate({"SecureCookies": False}, SslEnabled=True), tmp_path).secure_cookies is False
    assert load_gate_config(gate({"SecureCookies": True}), tmp_path).secure_cookies is True


def test_relative_storage_directory_is_resolved_against_the_base_dir(tmp_path):
    config = load_gate_config({"StorageDirectory": "data/orthanc"}, tmp_path)
    assert config.state_directory == (tmp_path / "data" / "orthanc").resolve()
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'data' / 'orthanc' / 'gate.sqlite'}"


def test_absolute_storage_directory_is_kept(tmp_path):
    elsewhere = tmp_path / "abs"
    config = load_gate_config({"StorageDirectory": str(elsewhere)}, tmp_path / "base")
    assert config.state_directory == elsewhere.resolve()


def test_state_directory_overrides_storage_directory(tmp_path):
    config = load_gate_config(gate({"StateDirectory": "gate-state"}, StorageDirectory="storage"), tmp_path)
    assert config.state_directory == (tmp_path / "gate-state").resolve()
    assert config.audit_spool_file == (tmp_path / "gate-state" / "gate-audit.spool").resolve()


def test_database_url_given_is_used_as_is(tmp_path):
    url = "postgresql://gate@db:5432/gate"
    assert load_gate_config(gate({"DatabaseUrl": url}), tmp_path).database_url == url


def test_named_key_file_is_resolved_and_not_generated(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "audit.key").write_text("k")
    config = load_gate_config(gate({"AuditCheckpointKeyFile": "keys/audit.key"}), tmp_path)
    assert config.audit_checkpoint_key_file == (tmp_path / "keys" / "audit.key").resolve()
    assert not config.audit_checkpoint_key_generated


# -- errors name the key -----------------------------------------------------------------------------


def test_unknown_key_error_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"Gate\.SessionIdleMinute\b"):
        load_gate_config(gate({"SessionIdleMinute": 5}), tmp_path)


def test_gate_section_must_be_an_object(tmp_path):
    with pytest.raises(ConfigError, match="Gate must be a JSON object"):
        load_gate_config({"Gate": ["DatabaseUrl"]}, tmp_path)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("SessionIdleMinutes", True, "must be a number"),
    ("DecisionCacheSeconds", False, "must be a number"),
    ("DatabaseTimeoutSeconds", "5", "must be a number"),
    ("AuditCoalesceSeconds", None, "must be a number"),
    ("SecureCookies", "true", "must be true or false"),
    ("SecureCookies", 1, "must be true or false"),
    ("IdentityCacheSeconds", -1, "must be at least 0"),
    ("BasicCredentialCacheSeconds", -0.5, "must be at least 0"),
    ("SessionIdleMinutes", 0.5, "must be at least 1"),
    ("DatabaseTimeoutSeconds", 0, "must be at least 0.1"),
    ("AuditCheckpointSeconds", 0, "must be at least 1"),
    ("DatabaseUrl", "", "must be a non-empty string"),
    ("HomePage", 42, "must be a non-empty string"),
    ("StateDirectory", "   ", "must be a non-empty string"),
    ("TrustedProxies", "10.0.0.2", "must be a JSON list"),
    ("TrustedProxies", [10], "must list addresses or networks"),
    ("TrustedProxies", ["proxy.example"], "does not appear to be an IPv4 or IPv6"),
    ("TrustedProxies", ["10.0.0.0/33"], "TrustedProxies"),
])
def test_wrong_value_error_names_the_key(tmp_path, key, value, message):
    with pytest.raises(ConfigError) as raised:
        load_gate_config(gate({key: value}), tmp_path)
    assert f"Gate.{key}" in raised.value.message and message in raised.value.message


def test_trusted_proxies_are_networks(tmp_path):
    config = load_gate_config(gate({"TrustedProxies": ["10.0.0.2", "10.1.0.0/16", "::1"]}), tmp_path)
    assert [str(n) for n in config.trusted_proxies] == ["10.0.0.2/32", "10.1.0.0/16", "::1/128"]
    assert load_gate_config(gate({}), tmp_path).trusted_proxies == ()


def test_zero_is_accepted_where_the_minimum_is_zero(tmp_path):
    assert load_gate_config(gate({"DecisionCacheSeconds": 0}), tmp_path).decision_cache_seconds == 0.0


@pytest.mark.parametrize("key", ["AuditCheckpointKeyFile", "ContactKeyFile"])
def test_named_key_file_missing_names_the_key(tmp_path, key):
    with pytest.raises(ConfigError, match=rf"Gate\.{key}: key file not found"):
        load_gate_config(gate({key: "nowhere.key"}), tmp_path)


def test_home_page_must_be_a_path(tmp_path):
    with pytest.raises(ConfigError, match=r"Gate\.HomePage"):
        load_gate_config(gate({"HomePage": "https://evil.example.com/"}), tmp_path)


def test_database_url_without_scheme_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"Gate\.DatabaseUrl"):
        load_gate_config(gate({"DatabaseUrl": "://host/db"}), tmp_path)


# -- reading Orthanc's files -------------------------------------------------------------------------


def test_comments_are_stripped_outside_strings():
    text = '{ // line\n "a": "http://x/*y*/", /* block\n over lines */ "b": "say \\"//\\" twice" }'
    assert json.loads(strip_json_comments(text)) == {"a": "http://x/*y*/", "b": 'say "//" twice'}


def test_unterminated_block_comment_is_an_error():
    with pytest.raises(ConfigError, match="unterminated"):
        strip_json_comments('{"a": 1 /* no end')


def test_read_orthanc_config_strips_comments_and_substitutes_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("GATE_TEST_DB", "postgresql://db/gate")
    monkeypatch.delenv("GATE_TEST_UNSET", raising=False)
    (tmp_path / "orthanc.json").write_text("""{
      // Orthanc allows comments
      "Name": "${GATE_TEST_UNSET:-fallback name}",  /* and block comments */
      "Gate": {
        "DatabaseUrl": "${GATE_TEST_DB}",
        "HomePage": "${GATE_TEST_UNSET:-'/ui/app/'}"
      },
      "Empty": "${GATE_TEST_UNSET}"
    }""")
    config = read_orthanc_config(tmp_path / "orthanc.json")
    assert config == {"Name": "fallback name", "Gate": {"DatabaseUrl": "postgresql://db/gate", "HomePage": "/ui/app/"},
                      "Empty": ""}


def test_set_variable_wins_over_its_default(monkeypatch):
    monkeypatch.setenv("GATE_TEST_PORT", "8043")
    assert substitute_variables('"${GATE_TEST_PORT:-8042}"') == '"8043"'


def test_text_that_is_not_a_variable_is_left_alone(monkeypatch):
    assert substitute_variables("$HOME ${1BAD} $") == "$HOME ${1BAD} $"


def test_read_orthanc_config_merges_a_folder_of_json_files(tmp_path):
    (tmp_path / "b.JSON").write_text('{"Gate": {"HomePage": "/second"}}')
    (tmp_path / "a.json").write_text('{"Name": "a"}')
    (tmp_path / "notes.txt").write_text("not json")
    assert read_orthanc_config(tmp_path) == {"Gate": {"HomePage": "/second"}, "Name": "a"}


def test_a_key_in_two_files_of_a_folder_is_an_error_as_orthanc_refuses_it(tmp_path):
    (tmp_path / "a.json").write_text('{"Gate": {"HomePage": "/first"}, "Name": "a"}')
    (tmp_path / "b.json").write_text('{"Gate": {"HomePage": "/second"}}')
    with pytest.raises(ConfigError, match="Gate is also in another file"):
        read_orthanc_config(tmp_path)


def test_a_file_that_is_not_a_json_object_is_an_error(tmp_path):
    (tmp_path / "orthanc.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        read_orthanc_config(tmp_path / "orthanc.json")


def test_a_json_error_is_placed_at_the_file_own_line_and_column_past_comments(tmp_path):
    (tmp_path / "orthanc.json").write_text('{\n  /* a\n  comment */ "Name": "x", // more\n  "Port" 1\n}')
    with pytest.raises(ConfigError, match="line 4, column 10"):
        read_orthanc_config(tmp_path / "orthanc.json")


def test_read_orthanc_config_of_an_empty_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no .json file"):
        read_orthanc_config(tmp_path)


def test_read_orthanc_config_names_the_file_that_is_not_json(tmp_path):
    (tmp_path / "broken.json").write_text('{"Gate": ')
    with pytest.raises(ConfigError, match="broken.json"):
        read_orthanc_config(tmp_path / "broken.json")


def test_config_base_is_the_file_folder_or_the_folder_itself(tmp_path):
    (tmp_path / "orthanc.json").write_text("{}")
    assert config_base(tmp_path / "orthanc.json") == tmp_path.resolve()
    assert config_base(tmp_path) == tmp_path.resolve()


# -- secret files ---------------------------------------------------------------------------------


def test_ensure_secret_file_creates_a_0600_file_once(tmp_path):
    path = tmp_path / "state" / "secret.key"
    calls = []

    def make_secret() -> bytes:
        calls.append(1)
        return b"first secret"

    old_umask = os.umask(0)  # the mode must not depend on the umask being strict
    try:
        assert ensure_secret_file(path, make_secret) is True
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b"first secret"
    assert ensure_secret_file(path, lambda: b"second secret") is False
    assert path.read_bytes() == b"first secret" and calls == [1]


def test_ensure_secret_file_keeps_an_existing_file(tmp_path):
    path = Path(tmp_path / "k")
    path.write_bytes(b"configured")
    assert ensure_secret_file(path, lambda: b"new") is False
    assert path.read_bytes() == b"configured"


# -- the Ldap sub-section ---------------------------------------------------------------------------

LDAP_OK = {"Servers": ["ldap://127.0.0.1:389"], "UserBase": "ou=people,dc=gate,dc=test",
           "GroupRoles": {"cn=Radiologists,ou=groups,dc=gate,dc=test": "radiologist",
                          "PACS Admins": ["admin", "radiologist"]}}


def test_ldap_section_is_read_with_defaults(tmp_path):
    config = load_gate_config({"Gate": {"Ldap": LDAP_OK}}, tmp_path)
    assert config.ldap.servers == ("ldap://127.0.0.1:389",)
    assert config.ldap.group_search == "memberOf" and config.ldap.nested_groups is False
    assert "{username}" in config.ldap.user_filter
    assert config.ldap.group_roles == {"cn=radiologists,ou=groups,dc=gate,dc=test": ("radiologist",),
                                       "pacs admins": ("admin", "radiologist")}
    assert (config.ldap.timeout_seconds, config.ldap.max_concurrent, config.ldap.retry_seconds,
            config.ldap.recheck_seconds) == (3.0, 4, 10.0, 900.0)
    # A group name is matched only under GroupBase, which LDAP_OK does not set: said at start-up.
    assert config.ldap.warnings == ("Gate.Ldap.GroupRoles: 'pacs admins' can match no group (a group name is "
                                    "matched only under GroupBase, which is not set)",)


def test_group_roles_dns_are_normalised(tmp_path):
    section = {**LDAP_OK, "GroupBase": "ou=groups,dc=gate,dc=test",
               "GroupRoles": {"CN=Radiologists , OU=Groups,DC=gate,DC=test": "radiologist", "PACS Admins": "admin"}}
    config = load_gate_config({"Gate": {"Ldap": section}}, tmp_path)
    assert set(config.ldap.group_roles) == {"cn=radiologists,ou=groups,dc=gate,dc=test", "pacs admins"}
    assert config.ldap.warnings == ()


@pytest.mark.parametrize("servers", [["ldaps://dc1", "ldap://dc2"], ["ldap://dc1", "ldaps://dc2"]])
def test_a_plaintext_server_beside_a_tls_one_is_refused(tmp_path, servers):
    with pytest.raises(ConfigError, match="mixes ldaps:// and plain ldap://"):
        load_gate_config({"Gate": {"Ldap": {**LDAP_OK, "Servers": servers}}}, tmp_path)
    assert load_gate_config({"Gate": {"Ldap": {**LDAP_OK, "Servers": servers, "StartTls": True}}}, tmp_path).ldap


def test_no_ldap_section_means_no_directory(tmp_path):
    assert load_gate_config({"Gate": {}}, tmp_path).ldap is None


@pytest.mark.parametrize(("change", "message"), [
    ({"Sever": ["ldap://x"]}, "Gate.Ldap.Sever"),
    ({"Servers": ["http://x"]}, "Gate.Ldap.Servers"),
    ({"Servers": []}, "Gate.Ldap.Servers"),
    ({"UserBase": ""}, "Gate.Ldap.UserBase"),
    ({"UserFilter": "(uid=*)"}, "Gate.Ldap.UserFilter"),
    ({"GroupSearch": "nested"}, "Gate.Ldap.GroupSearch"),
    ({"GroupSearch": "member"}, "Gate.Ldap.GroupBase"),
    ({"GroupRoles": {"cn=x": "superuser"}}, "Gate.Ldap.GroupRoles"),
    ({"GroupRoles": {}}, "Gate.Ldap.GroupRoles"),
    ({"TimeoutSeconds": "5"}, "Gate.Ldap.TimeoutSeconds"),
    ({"StartTls": "yes"}, "Gate.Ldap.StartTls"),
    ({"MaxConcurrent": 0}, "Gate.Ldap.MaxConcurrent"),
    ({"RecheckSeconds": "15m"}, "Gate.Ldap.RecheckSeconds"),
    ({"BindPasswordFile": "/nonexistent/secret"}, "Gate.Ldap.BindPasswordFile"),
])
def test_bad_ldap_settings_name_the_key(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_gate_config({"Gate": {"Ldap": {**LDAP_OK, **change}}}, tmp_path)


def test_bind_password_comes_from_its_file(tmp_path):
    (tmp_path / "ldap.secret").write_text("service secret\n")
    config = load_gate_config({"Gate": {"Ldap": {**LDAP_OK, "BindDn": "cn=svc", "BindPasswordFile": "ldap.secret"}}},
                              tmp_path)
    assert config.ldap.bind_password == "service secret"


@pytest.mark.parametrize(("orthanc", "warned"), [
    ({}, True),  # Orthanc's own default accepts stores from anyone
    ({"DicomAlwaysAllowStore": True}, True),
    ({"DicomAlwaysAllowStore": False}, False),
    ({"DicomServerEnabled": False}, False),
])
def test_stores_open_to_any_modality_are_named_at_start(orthanc, warned):
    warning = open_to_any_modality(orthanc)
    assert (warning is not None) is warned
    assert warning is None or "DicomAlwaysAllowStore" in warning


def test_the_dicomweb_settings_read_what_the_plugins_key_lookup_depends_on():
    settings = dicomweb_settings({"DefaultPrivateCreator": "Lunit", "DicomWeb": {"Root": "dicomweb", "Ssl": True},
                                  "Dictionary": {"0009,1001": ["DS", "AbnormalityScore", 1, 1, "Lunit"],
                                                 "bad": ["DS", "X"], "0011,0010": ["LO"]}})
    assert settings.root == "/dicomweb/" and settings.ssl and settings.default_private_creator == "Lunit"
    assert settings.dictionary_keywords == (("AbnormalityScore", 0x00091001),)
    assert dicomweb_settings({}) == DicomWebSettings()


# -- referrals, outbox, SMTP and SMS ---------------------------------------------------------------

def test_messages_are_off_and_referrals_on_by_default(tmp_path):
    config = load_gate_config({"HttpPort": 8043}, tmp_path)
    assert (config.smtp, config.sms) == (None, None)
    assert config.referrals.enabled and config.referrals.default_level == "download"
    assert config.referrals.grant_days is None and config.public_url == "http://localhost:8043"


def test_mail_and_sms_servers_are_read_with_their_secrets_from_files(tmp_path):
    (tmp_path / "smtp.secret").write_text("mail password\n")
    (tmp_path / "click.secret").write_text("the key\n")
    config = load_gate_config(gate({
        "PublicUrl": "https://pacs.example.co.za/", "Referrals": {"DefaultLevel": "view_only", "GrantDays": 90},
        "Smtp": {"Host": "smtp.example.co.za", "Security": "tls", "From": "pacs@example.co.za",
                 "Username": "pacs", "PasswordFile": "smtp.secret"},
        "Sms": {"Gateway": "clickatell", "ApiKeyFile": "click.secret"}}), tmp_path)
    assert config.public_url == "https://pacs.example.co.za"
    assert (config.referrals.default_level, config.referrals.grant_days) == ("view_only", 90)
    assert (config.smtp.port, config.smtp.password) == (465, "mail password")
    assert (config.sms.url, config.sms.api_key) == ("https://platform.clickatell.com/messages", "the key")


@pytest.mark.parametrize(("section", "named"), [
    ({"Referrals": {"Enable": True}}, "Gate.Referrals.Enable"),
    ({"Referrals": {"DefaultLevel": "everything"}}, "Gate.Referrals.DefaultLevel"),
    ({"Referrals": {"GrantDays": 0}}, "Gate.Referrals.GrantDays"),
    ({"Outbox": {"MaxAttempts": 0}}, "Gate.Outbox"),
    ({"Outbox": {"RetryBaseSeconds": 60, "RetryMaxSeconds": 10}}, "Gate.Outbox.RetryMaxSeconds"),
    ({"PublicUrl": "pacs.example.co.za"}, "Gate.PublicUrl"),
    ({"Smtp": {"Host": "smtp.example.co.za"}}, "Gate.Smtp"),
    ({"Smtp": {"Host": "h", "From": "a@b.c", "Security": "ssl"}}, "Gate.Smtp.Security"),
    ({"Smtp": {"Host": "h", "From": "a@b.c", "Username": "u"}}, "Gate.Smtp"),
    ({"Smtp": {"Host": "h", "From": "a@b.c", "Username": "u", "PasswordFile": "missing"}}, "Gate.Smtp.PasswordFile"),
    ({"Sms": {"Gateway": "twilio"}}, "Gate.Sms.Gateway"),
    ({"Sms": {"Gateway": "clickatell"}}, "Gate.Sms"),
    ({"Sms": {"Gateway": "bulksms", "Username": "u"}}, "Gate.Sms"),
    ({"Sms": {"Gateway": "generic", "Url": "https://sms.example/send", "Body": '{"to":"{to}"}'}}, "Gate.Sms.Body"),
    ({"Sms": {"Gateway": "generic", "Body": "{to} {text}"}}, "Gate.Sms.Url"),
])
def test_a_bad_referral_or_message_setting_stops_the_start_naming_the_key(tmp_path, section, named):
    with pytest.raises(ConfigError) as caught:
        load_gate_config(gate(section), tmp_path)
    assert named in caught.value.message


@pytest.mark.parametrize(("orthanc", "version", "warned"), [
    ({}, "4.0", False),  # Debian 12's plugin: no such option, the lock is always held
    ({"Python": {"AllowThreads": True}}, "4.0", False),
    ({}, "4.3", True),
    ({}, "5.0", True),  # Orthanc 1.12's images
    ({"Python": {"AllowThreads": False}}, "5.0", True),
    ({"Python": {"AllowThreads": "true"}}, "5.0", True),  # the plugin reads a boolean only
    ({"Python": {"AllowThreads": True}}, "5.0", False),
    ({"Python": True}, "7.1", True),
    ({}, "", False),  # unreadable: nothing is claimed
    ({}, "mainline", False),
])
def test_a_python_plugin_holding_its_lock_during_core_calls_is_named_at_start(orthanc, version, warned):
    warning = holds_python_lock(orthanc, version)
    assert (warning is not None) is warned
    assert warning is None or ('"AllowThreads": true' in warning and version in warning)

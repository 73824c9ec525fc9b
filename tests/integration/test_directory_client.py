"""identity/directory.py straight against a real slapd: both group modes, fail-over, all down."""

from __future__ import annotations

import dataclasses

import pytest

from plugin.config import load_gate_config
from plugin.identity.directory import NOBODY, Directory, DirectoryUnavailable
from tests.ldap_server import PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, LdapServer

GROUPS = "ou=groups,dc=gate,dc=test"


@pytest.fixture(scope="module")
def ldap(tmp_path_factory: pytest.TempPathFactory):
    server = LdapServer(tmp_path_factory.mktemp("slapd-client")).start()
    try:
        yield server
    finally:
        server.stop()


def directory(tmp_path, servers: list[str], bind_password: str = SERVICE_PASSWORD, **ldap: object) -> Directory:
    section = {"Servers": servers, "BindDn": SERVICE_DN, "UserBase": PEOPLE_DN, "TimeoutSeconds": 2,
               "GroupRoles": {"Radiologists": "radiologist"}, **ldap}
    config = load_gate_config({"Gate": {"Ldap": section}}, tmp_path).ldap
    return Directory(dataclasses.replace(config, bind_password=bind_password))


@pytest.mark.parametrize("mode", [{}, {"GroupSearch": "member", "GroupBase": GROUPS}], ids=["memberOf", "member"])
def test_both_group_modes_find_the_same_groups(ldap, tmp_path, mode):
    answer = directory(tmp_path, [ldap.url], **mode).authenticate("rad1", "rad1 password 123")
    account = answer.account
    assert account is not None and account.dn == "uid=rad1,ou=people,dc=gate,dc=test"
    assert account.login == "rad1" and account.entry_id.startswith("uuid:") and answer.entry_id == account.entry_id
    assert [g.lower() for g in account.groups] == [f"cn=radiologists,{GROUPS}"]
    assert account.email == "rad1@gate.test"


def test_wrong_password_empty_password_and_unknown_user_are_none(ldap, tmp_path):
    client = directory(tmp_path, [ldap.url])
    wrong = client.authenticate("rad1", "wrong")
    assert wrong.account is None and wrong.entry_id.startswith("uuid:")  # the entry the name found
    assert client.authenticate("rad1", "").account is None  # never an anonymous bind
    assert client.authenticate("nobody-here", "x") == NOBODY


def test_a_dead_first_server_fails_over_and_all_dead_is_unavailable(ldap, tmp_path):
    assert directory(tmp_path, ["ldap://127.0.0.1:1", ldap.url]).authenticate("rad1", "rad1 password 123").account
    with pytest.raises(DirectoryUnavailable):
        directory(tmp_path, ["ldap://127.0.0.1:1", "ldap://127.0.0.1:2"]).authenticate("rad1", "rad1 password 123")


def test_a_wrong_service_password_is_unavailable_not_a_wrong_user_password(ldap, tmp_path):
    client = directory(tmp_path, [ldap.url], bind_password="not the service secret")
    with pytest.raises(DirectoryUnavailable):
        client.authenticate("rad1", "rad1 password 123")

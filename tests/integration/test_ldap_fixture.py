"""The test directory (tests/ldap_server.py) itself: a real slapd with memberOf, binds, group moves and
restarts, checked with the OpenLDAP client tools."""

from __future__ import annotations

import os

import pytest

from tests.ldap_server import (
    ADMIN_DN,
    ADMIN_PASSWORD,
    SERVICE_DN,
    SERVICE_PASSWORD,
    USERS,
    LdapServer,
    group_dn,
    parse_ldif_values,
    user_dn,
)


@pytest.fixture(scope="module")
def ldap(tmp_path_factory: pytest.TempPathFactory):
    server = LdapServer(tmp_path_factory.mktemp("ldap")).start()
    try:
        yield server
    finally:
        server.stop()


def test_slapd_runs_as_the_recorded_pid(ldap: LdapServer):
    assert ldap.url == f"ldap://127.0.0.1:{ldap.port}"
    assert int((ldap.workdir / "slapd.pid").read_text()) == ldap.pid
    os.kill(ldap.pid, 0)


def test_service_account_finds_a_user_and_its_groups(ldap: LdapServer):
    found = ldap.search("(uid=rad1)", "uid", "mail", "memberOf")
    assert found.returncode == 0, found.stderr
    assert parse_ldif_values(found.stdout, "dn") == [user_dn("rad1")]
    assert parse_ldif_values(found.stdout, "mail") == ["rad1@gate.test"]
    assert parse_ldif_values(found.stdout, "memberOf") == [group_dn("Radiologists")]
    # memberOf is operational: "*" alone does not return it.
    assert parse_ldif_values(ldap.search("(uid=rad1)", "*").stdout, "memberOf") == []


@pytest.mark.parametrize("uid", sorted(set(USERS) - {"ref1"}))  # ref1: see the move test below
def test_every_user_has_the_memberof_of_the_ldif(ldap: LdapServer, uid: str):
    assert ldap.member_of(uid) == [group_dn(cn) for cn in USERS[uid][1]]


def test_non_ascii_uid_is_found(ldap: LdapServer):
    found = ldap.search("(uid=züri)", "uid", "cn")
    assert parse_ldif_values(found.stdout, "uid") == ["züri"]
    assert parse_ldif_values(found.stdout, "cn") == ["Züri Radiologist"]


def test_service_account_cannot_read_passwords_and_anonymous_sees_nothing(ldap: LdapServer):
    assert parse_ldif_values(ldap.search("(uid=rad1)", "userPassword").stdout, "userPassword") == []
    anonymous = ldap.search("(uid=rad1)", bind_dn="", password="")
    assert anonymous.returncode == 32 and anonymous.stdout.strip() == ""  # noSuchObject: not even the base


def test_users_bind_with_their_password_only(ldap: LdapServer):
    good = ldap.whoami(user_dn("rad1"), "rad1 password 123")
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == f"dn:{user_dn('rad1')}"
    bad = ldap.whoami(user_dn("rad1"), "rad1 password 124")
    assert bad.returncode == 49, (bad.returncode, bad.stderr)  # invalidCredentials
    assert ldap.whoami(user_dn("züri"), "zuri password 123").returncode == 0
    assert ldap.whoami(user_dn("admin"), "directory admin 123").returncode == 0
    assert ldap.whoami(SERVICE_DN, SERVICE_PASSWORD).returncode == 0
    assert ldap.whoami(ADMIN_DN, ADMIN_PASSWORD).returncode == 0
    assert ldap.whoami(ADMIN_DN, "directory admin 123").returncode == 49


def test_moving_a_user_changes_its_memberof(ldap: LdapServer):
    assert ldap.member_of("ref1") == [group_dn("Referrers")]
    ldap.move_user_to_group("ref1", "Referrers", "Radiologists")
    assert ldap.member_of("ref1") == [group_dn("Radiologists")]
    ldap.add_member("Cleaners", "ref1")
    assert sorted(ldap.member_of("ref1")) == sorted([group_dn("Radiologists"), group_dn("Cleaners")])
    ldap.remove_member("Cleaners", "ref1")
    assert ldap.member_of("ref1") == [group_dn("Radiologists")]


def test_directory_goes_down_and_comes_back_on_the_same_port(ldap: LdapServer):
    port, first_pid = ldap.port, ldap.pid
    ldap.stop()
    down = ldap.search("(uid=rad1)", "memberOf")
    assert down.returncode != 0  # 255: can't contact LDAP server
    assert ldap.whoami(user_dn("rad1"), "rad1 password 123").returncode != 0
    ldap.start()
    assert (ldap.port, ldap.url) == (port, f"ldap://127.0.0.1:{port}")
    assert ldap.pid != first_pid
    assert ldap.member_of("rad1") == [group_dn("Radiologists")]
    assert ldap.member_of("ref1") == [group_dn("Radiologists")]  # the earlier move survived the restart
    assert ldap.whoami(user_dn("rad1"), "rad1 password 123").returncode == 0

"""policies/roles.py: directory groups to roles, by full DN or by name under the group base only."""

from __future__ import annotations

import pytest

from plugin.policies.roles import group_name_under, keys_matching_nothing, normalise_dn, roles_for_groups

BASE = "ou=groups,dc=gate,dc=test"
MAPPING = {
    "cn=radiologists,ou=groups,dc=gate,dc=test": ("radiologist",),
    "referrers": ("referring_doctor",),
    "pacs admins": ("admin", "radiologist"),
}


@pytest.mark.parametrize(("groups", "roles"), [
    (["cn=Radiologists,ou=groups,dc=gate,dc=test"], {"radiologist"}),      # by DN, any case
    (["CN=Radiologists , OU=Groups,DC=gate,DC=test"], {"radiologist"}),    # spaces and case ignored
    (["cn=Referrers,ou=groups,dc=gate,dc=test"], {"referring_doctor"}),    # by name, under the base
    (["cn=PACS Admins,ou=groups,dc=gate,dc=test"], {"admin", "radiologist"}),
    (["cn=Cleaners,ou=groups,dc=gate,dc=test"], set()),                     # unmapped: nothing
    ([], set()),
    (["cn=Referrers,ou=projects,dc=gate,dc=test"], set()),                  # same name elsewhere: nothing
    (["cn=PACS Admins,ou=projects,ou=groups,dc=gate,dc=test"], set()),      # below the base, not in it
    (["CN=Referrers,OU=Somewhere,DC=ad,DC=example"], set()),                # another directory altogether
    (["ou=Referrers,ou=groups,dc=gate,dc=test"], set()),                    # not a CN
    (["cn=radiologists,ou=other,dc=gate,dc=test"], set()),                  # same CN, DN-only mapping
    (["cn=Referrers,ou=groups,dc=gate,dc=test", "cn=Radiologists,ou=groups,dc=gate,dc=test"],
     {"referring_doctor", "radiologist"}),
])
def test_roles_for_groups(groups, roles):
    assert roles_for_groups(groups, MAPPING, BASE) == frozenset(roles)


def test_without_a_group_base_names_match_nothing():
    assert roles_for_groups(["cn=Referrers,ou=groups,dc=gate,dc=test"], MAPPING, None) == frozenset()
    assert roles_for_groups(["cn=Radiologists,ou=groups,dc=gate,dc=test"], MAPPING, None) == {"radiologist"}


def test_normalise_dn_keeps_escaped_commas():
    assert normalise_dn("CN=Smith\\, John , OU=People") == "cn=smith\\, john,ou=people"


def test_group_name_under():
    assert group_name_under("CN=Referrers ,OU=groups,DC=gate,DC=test", BASE) == "referrers"
    assert group_name_under("uid=x,ou=groups,dc=gate,dc=test", BASE) == ""
    assert group_name_under("cn=x", BASE) == ""
    assert group_name_under("cn=x,ou=groups,dc=gate,dc=test", None) == ""


def test_keys_that_can_match_nothing_are_named():
    keys = ["cn=radiologists", "cn=radiologists,ou=groups,dc=gate,dc=test", "cn=x,dc=other,dc=org", "referrers"]
    assert keys_matching_nothing(keys, None, "ou=people,dc=gate,dc=test") == ["cn=radiologists",
                                                                             "cn=x,dc=other,dc=org", "referrers"]
    assert keys_matching_nothing(keys, BASE, "ou=people,dc=gate,dc=test") == ["cn=radiologists",
                                                                             "cn=x,dc=other,dc=org"]

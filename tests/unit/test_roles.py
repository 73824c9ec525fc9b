"""policies/roles.py: directory groups to roles, by DN or CN, default nothing."""

from __future__ import annotations

import pytest

from plugin.policies.roles import group_cn, roles_for_groups

MAPPING = {
    "cn=radiologists,ou=groups,dc=gate,dc=test": ("radiologist",),
    "referrers": ("referring_doctor",),
    "pacs admins": ("admin", "radiologist"),
}


@pytest.mark.parametrize(("groups", "roles"), [
    (["cn=Radiologists,ou=groups,dc=gate,dc=test"], {"radiologist"}),      # by DN, any case
    (["CN=Referrers,OU=Somewhere,DC=ad,DC=example"], {"referring_doctor"}),  # by CN, anywhere
    (["cn=PACS Admins,ou=groups,dc=gate,dc=test"], {"admin", "radiologist"}),
    (["cn=Cleaners,ou=groups,dc=gate,dc=test"], set()),                     # unmapped: nothing
    ([], set()),
    (["cn=Referrers,ou=x", "cn=Radiologists,ou=groups,dc=gate,dc=test"], {"referring_doctor", "radiologist"}),
    (["ou=Referrers,dc=x"], set()),                                           # not a CN
    (["cn=radiologists,ou=other,dc=gate,dc=test"], set()),                  # same CN, DN-only mapping
])
def test_roles_for_groups(groups, roles):
    assert roles_for_groups(groups, MAPPING) == frozenset(roles)


def test_group_cn():
    assert group_cn("CN=Radiologists ,OU=groups") == "radiologists"
    assert group_cn("uid=x,ou=people") == ""
    assert group_cn("") == ""

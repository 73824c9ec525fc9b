"""Which roles a directory account gets from its groups (pure).

`GroupRoles` keys are either a group's full DN (`cn=Radiologists,ou=Groups,dc=practice,dc=local`),
matched exactly, or a group's name (`Radiologists`), matched only for groups directly under the
configured GroupBase: a group of the same name elsewhere in the directory (one a delegated admin
may create) gives nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


def normalise_dn(dn: str) -> str:
    """A DN compared the way directories do for our purposes: RDNs trimmed, case ignored."""
    parts = []
    for rdn in _UNESCAPED_COMMA.split(dn):
        name, sep, value = rdn.partition("=")
        parts.append(f"{name.strip().lower()}{sep}{value.strip().lower()}" if sep else rdn.strip().lower())
    return ",".join(parts)


def is_dn_key(key: str) -> bool:
    return "=" in key


def group_name_under(group_dn: str, group_base: str | None) -> str:
    """The CN of a group directly under `group_base` ("" for any other group, or without a base)."""
    if not group_base:
        return ""
    parts = _UNESCAPED_COMMA.split(normalise_dn(group_dn), 1)
    if len(parts) != 2 or parts[1] != normalise_dn(group_base):
        return ""
    name, _, value = parts[0].partition("=")
    return value if name == "cn" else ""


def roles_for_groups(group_dns: Iterable[str], group_roles: Mapping[str, tuple[str, ...]],
                     group_base: str | None) -> frozenset[str]:
    """Union of the roles mapped to any of the groups. `group_roles` keys are normalised DNs and
    lower-cased names (the configuration loader does that). A group mapped to nothing gives
    nothing: default deny."""
    roles: set[str] = set()
    for dn in group_dns:
        roles.update(group_roles.get(normalise_dn(dn), ()))
        name = group_name_under(dn, group_base)
        if name:
            roles.update(group_roles.get(name, ()))
    return frozenset(roles)


def keys_matching_nothing(group_roles: Iterable[str], group_base: str | None, user_base: str) -> list[str]:
    """GroupRoles keys no group can ever match, for a warning at start-up: names without a
    GroupBase, and DNs too short to be a group's (`cn=radiologists` without its base) or outside the
    directory (not ending with the user base's domain)."""
    domain = ",".join(part for part in normalise_dn(user_base).split(",") if part.startswith("dc="))
    found = []
    for key in group_roles:
        if not is_dn_key(key):
            if not group_base:
                found.append(key)
        elif "," not in key or (domain and not key.endswith(domain)):
            found.append(key)
    return found

"""Which roles a directory account gets from its groups (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def group_cn(group_dn: str) -> str:
    """The CN of a group DN ("cn=Radiologists,ou=groups,..." -> "radiologists"), lower-cased."""
    first = group_dn.split(",", 1)[0].strip()
    name, sep, value = first.partition("=")
    return value.strip().lower() if sep and name.strip().lower() == "cn" else ""


def roles_for_groups(group_dns: Iterable[str], group_roles: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    """Union of the roles mapped to any of the groups, matched by full DN or by CN, ignoring case.

    `group_roles` keys are expected lower-cased (the configuration loader does that). A group
    mapped to nothing gives nothing: default deny.
    """
    roles: set[str] = set()
    for dn in group_dns:
        for key in (dn.strip().lower(), group_cn(dn)):
            roles.update(group_roles.get(key, ()))
    return frozenset(roles)

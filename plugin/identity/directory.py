"""Directory sign-in (OpenLDAP or Active Directory) with ldap3: find the account, bind as it, read groups.

The service account searches for the user (the username is escaped, so `*`, `(`, `)` and the
like match only themselves), the user's own bind proves the password, and the groups come from
the user's memberOf (optionally nested, the AD way) or from a search of groups naming the user.
Servers are tried in order; only when none answers is the directory "unavailable".
"""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass

from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPBindError, LDAPException, LDAPInvalidCredentialsResult
from ldap3.utils.conv import escape_filter_chars

from plugin.config import LdapConfig

# Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: membership through nested groups.
IN_CHAIN = "1.2.840.113556.1.4.1941"


class DirectoryUnavailable(Exception):
    """No configured directory server could be reached (or it failed while answering)."""


@dataclass(frozen=True)
class DirectoryAccount:
    username: str
    dn: str
    groups: tuple[str, ...]
    email: str = ""
    display_name: str = ""


class Directory:
    def __init__(self, config: LdapConfig) -> None:
        self._config = config
        self._tls = None
        if config.start_tls or any(url.startswith("ldaps://") for url in config.servers):
            self._tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=config.ca_file)
        # ldap3 packs socket timeouts as integers: whole seconds, at least one.
        self._timeout = max(1, math.ceil(config.timeout_seconds))

    def authenticate(self, username: str, password: str) -> DirectoryAccount | None:
        """The account if the password is right, None if not (or no such single account).

        Raises DirectoryUnavailable when no server can be used.
        """
        if not username or not password or any(ord(c) < 0x20 for c in username):
            return None  # an empty password would be an anonymous bind, which always "succeeds"
        failure: Exception | None = None
        for url in self._config.servers:
            # A new Server each time: ldap3's Server remembers an address that failed once and
            # would keep refusing it after the directory is back.
            server = Server(url, connect_timeout=self._timeout, get_info=NONE, tls=self._tls)
            try:
                return self._authenticate_on(server, username, password)
            except (LDAPException, OSError) as exc:
                failure = exc
        raise DirectoryUnavailable(f"directory unavailable: {type(failure).__name__}")

    def _connection(self, server: Server, user: str | None, password: str | None) -> Connection:
        connection = Connection(server, user=user, password=password, receive_timeout=self._timeout,
                                raise_exceptions=False, read_only=True)
        connection.open()
        if self._config.start_tls:
            connection.start_tls()
        return connection

    def _authenticate_on(self, server: Server, username: str, password: str) -> DirectoryAccount | None:
        config = self._config
        service = self._connection(server, config.bind_dn, config.bind_password)
        try:
            if not service.bind():
                raise DirectoryUnavailable("the service account could not bind")
            user_filter = config.user_filter.replace("{username}", escape_filter_chars(username))
            service.search(config.user_base, user_filter, SUBTREE, attributes=["memberOf", "mail", "displayName", "cn"])
            entries = [e for e in service.response or [] if e.get("type") == "searchResEntry"]
            if len(entries) != 1:
                return None  # unknown, or ambiguous: never guess which account was meant
            entry = entries[0]
            dn = entry["dn"]
            if not self._password_ok(server, dn, password):
                return None
            attributes = entry.get("attributes", {})
            return DirectoryAccount(username=username, dn=dn, groups=self._groups(service, dn, attributes),
                                    email=_first(attributes.get("mail")),
                                    display_name=_first(attributes.get("displayName")) or _first(attributes.get("cn")))
        finally:
            service.unbind()

    def _password_ok(self, server: Server, dn: str, password: str) -> bool:
        user = self._connection(server, dn, password)
        try:
            return bool(user.bind())
        except (LDAPBindError, LDAPInvalidCredentialsResult):
            return False
        finally:
            user.unbind()

    def _groups(self, service: Connection, dn: str, attributes: dict) -> tuple[str, ...]:
        config = self._config
        if config.nested_groups:
            base = config.group_base or config.user_base
            service.search(base, f"(member:{IN_CHAIN}:={escape_filter_chars(dn)})", SUBTREE, attributes=[])
            return tuple(e["dn"] for e in service.response or [] if e.get("type") == "searchResEntry")
        if config.group_search == "member":
            service.search(config.group_base, f"(member={escape_filter_chars(dn)})", SUBTREE, attributes=[])
            return tuple(e["dn"] for e in service.response or [] if e.get("type") == "searchResEntry")
        member_of = attributes.get("memberOf") or []
        if not member_of:  # some servers only return operational attributes when asked by name
            service.search(dn, "(objectClass=*)", BASE, attributes=["memberOf"])
            found = [e for e in service.response or [] if e.get("type") == "searchResEntry"]
            member_of = found[0].get("attributes", {}).get("memberOf", []) if found else []
        return tuple(member_of)


def _first(value: object) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")

"""Directory sign-in (OpenLDAP or Active Directory) with ldap3: find the account, bind as it, read groups.

The service account searches for the user (the username is escaped, so `*`, `(`, `)` and the
like match only themselves), the user's own bind proves the password, and the groups come from
the user's memberOf (optionally nested, the AD way) or from a search of groups naming the user.

An account is its directory entry: the directory matches a typed name ignoring case, spaces and
Unicode compatibility forms (`RAD1`, ` rad1`, fullwidth `ｒａｄ１` are one entry), so the Gate keys
a directory account by the entry's stable id (AD's objectGUID, OpenLDAP's entryUUID, else its DN)
and names it by the entry's own login attribute, never by what was typed.

A directory that hangs must not take Orthanc's HTTP threads with it: at most MaxConcurrent
operations wait on it at once (the rest are refused at once as "busy"), each server that failed is
skipped for RetrySeconds (fail fast while it is down), and every connection has short timeouts.
Servers are tried in order; only when none answers is the directory "unavailable".
"""

from __future__ import annotations

import math
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPBindError, LDAPException, LDAPInvalidCredentialsResult
from ldap3.utils.conv import escape_bytes, escape_filter_chars

from plugin.config import LdapConfig
from plugin.policies.roles import normalise_dn

# Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: membership through nested groups.
IN_CHAIN = "1.2.840.113556.1.4.1941"
# What an account is called, in the order looked for: OpenLDAP's uid, AD's sAMAccountName, then UPN.
LOGIN_ATTRIBUTES = ("uid", "sAMAccountName", "userPrincipalName")
ENTRY_ATTRIBUTES = ["memberOf", "mail", "displayName", "cn", "entryUUID", "objectGUID", *LOGIN_ATTRIBUTES]
WAIT_FOR_A_SLOT_SECONDS = 0.05

T = TypeVar("T")


class DirectoryUnavailable(Exception):
    """No configured directory server could be used (down, hung, busy, or failing while answering)."""


@dataclass(frozen=True)
class DirectoryAccount:
    entry_id: str  # "guid:<objectGUID hex>", "uuid:<entryUUID>" or "dn:<normalised DN>"
    login: str  # the entry's own name for the account (uid / sAMAccountName / UPN)
    dn: str
    groups: tuple[str, ...]
    email: str = ""
    display_name: str = ""


@dataclass(frozen=True)
class DirectoryAnswer:
    """What a sign-in found: the account when the password is right; the entry's id whenever the
    name found one entry (so that failures count against the entry, however it was typed)."""

    account: DirectoryAccount | None
    entry_id: str | None = None


NOBODY = DirectoryAnswer(None)


class Directory:
    def __init__(self, config: LdapConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._tls = None
        if config.start_tls or any(url.startswith("ldaps://") for url in config.servers):
            self._tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=config.ca_file)
        # ldap3 packs socket timeouts as integers: whole seconds, at least one.
        self._timeout = max(1, math.ceil(config.timeout_seconds))
        self._slots = threading.BoundedSemaphore(config.max_concurrent)
        self._down_until: dict[str, float] = {}

    def authenticate(self, username: str, password: str) -> DirectoryAnswer:
        """Check a password against the entry the name finds. Raises DirectoryUnavailable."""
        if not username or not password or any(ord(c) < 0x20 for c in username):
            return NOBODY  # an empty password would be an anonymous bind, which always "succeeds"
        return self._on_a_server(lambda server: self._authenticate_on(server, username, password))

    def lookup(self, entry_id: str) -> DirectoryAccount | None:
        """The entry as it is now (groups included), or None when it no longer exists. Raises
        DirectoryUnavailable."""
        return self._on_a_server(lambda server: self._lookup_on(server, entry_id))

    def find(self, username: str) -> DirectoryAccount | None:
        """The one entry a name finds, as it is now (no password is checked), or None. Raises
        DirectoryUnavailable."""
        return self._on_a_server(lambda server: self._find_on(server, username))

    # -- servers, slots and fail-fast ----------------------------------------------------------

    def _on_a_server(self, operation: Callable[[Server], T]) -> T:
        if not self._slots.acquire(timeout=WAIT_FOR_A_SLOT_SECONDS):
            raise DirectoryUnavailable("directory unavailable: busy (too many sign-ins are waiting on it)")
        try:
            failure = "every server was skipped after failing recently"
            for url in self._config.servers:
                if self._down_until.get(url, 0.0) > self._clock():
                    continue
                # A new Server each time: ldap3's Server remembers an address that failed once and
                # would keep refusing it after the directory is back.
                server = Server(url, connect_timeout=self._timeout, get_info=NONE, tls=self._tls)
                try:
                    result = operation(server)
                except (LDAPException, OSError) as exc:
                    self._down_until[url] = self._clock() + self._config.retry_seconds
                    failure = type(exc).__name__
                    continue
                self._down_until.pop(url, None)
                return result
            raise DirectoryUnavailable(f"directory unavailable: {failure}")
        finally:
            self._slots.release()

    def _connection(self, server: Server, user: str | None, password: str | None) -> Connection:
        connection = Connection(server, user=user, password=password, receive_timeout=self._timeout,
                                raise_exceptions=False, read_only=True)
        connection.open()
        if self._config.start_tls:
            connection.start_tls()
        return connection

    def _service(self, server: Server) -> Connection:
        config = self._config
        service = self._connection(server, config.bind_dn, config.bind_password)
        if not service.bind():
            service.unbind()
            raise DirectoryUnavailable("directory unavailable: the service account could not bind")
        return service

    # -- operations ------------------------------------------------------------------------------

    def _entries_named(self, service: Connection, username: str) -> list[dict]:
        """The entries the user filter finds for a name (escaped: `*`, `(`, `)` match only themselves)."""
        config = self._config
        user_filter = config.user_filter.replace("{username}", escape_filter_chars(username))
        service.search(config.user_base, user_filter, SUBTREE, attributes=ENTRY_ATTRIBUTES)
        return _entries(service)

    def _authenticate_on(self, server: Server, username: str, password: str) -> DirectoryAnswer:
        service = self._service(server)
        try:
            entries = self._entries_named(service, username)
            if len(entries) != 1:
                return NOBODY  # unknown, or ambiguous: never guess which account was meant
            entry = entries[0]
            entry_id = _entry_id(entry)
            if not self._password_ok(server, entry["dn"], password):
                return DirectoryAnswer(None, entry_id)
            return DirectoryAnswer(self._account(service, entry), entry_id)
        finally:
            service.unbind()

    def _find_on(self, server: Server, username: str) -> DirectoryAccount | None:
        service = self._service(server)
        try:
            entries = self._entries_named(service, username)
            return self._account(service, entries[0]) if len(entries) == 1 else None
        finally:
            service.unbind()

    def _lookup_on(self, server: Server, entry_id: str) -> DirectoryAccount | None:
        kind, _, value = entry_id.partition(":")
        service = self._service(server)
        try:
            if kind == "dn":
                service.search(value, "(objectClass=*)", BASE, attributes=ENTRY_ATTRIBUTES)
            else:
                search = f"(entryUUID={escape_filter_chars(value)})" if kind == "uuid" else \
                    f"(objectGUID={escape_bytes(bytes.fromhex(value))})"
                service.search(self._config.user_base, search, SUBTREE, attributes=ENTRY_ATTRIBUTES)
            if service.result.get("description") == "noSuchObject":
                return None
            entries = [e for e in _entries(service) if _entry_id(e) == entry_id]
            return self._account(service, entries[0]) if len(entries) == 1 else None
        finally:
            service.unbind()

    def _account(self, service: Connection, entry: dict) -> DirectoryAccount:
        attributes = entry.get("attributes", {})
        return DirectoryAccount(entry_id=_entry_id(entry), login=_login(entry), dn=entry["dn"],
                                groups=self._groups(service, entry["dn"], attributes),
                                email=_first(attributes.get("mail")),
                                display_name=_first(attributes.get("displayName")) or _first(attributes.get("cn")))

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
            return tuple(e["dn"] for e in _entries(service))
        if config.group_search == "member":
            service.search(config.group_base, f"(member={escape_filter_chars(dn)})", SUBTREE, attributes=[])
            return tuple(e["dn"] for e in _entries(service))
        member_of = attributes.get("memberOf") or []
        if not member_of:  # some servers only return operational attributes when asked by name
            service.search(dn, "(objectClass=*)", BASE, attributes=["memberOf"])
            found = _entries(service)
            member_of = found[0].get("attributes", {}).get("memberOf", []) if found else []
        return tuple(member_of)


def _entries(connection: Connection) -> list[dict]:
    return [e for e in connection.response or [] if e.get("type") == "searchResEntry"]


def _entry_id(entry: dict[str, Any]) -> str:
    """The entry's stable id: objectGUID (AD), entryUUID (OpenLDAP), else its normalised DN."""
    guid = (entry.get("raw_attributes") or {}).get("objectGUID") or []
    if guid and isinstance(guid[0], bytes) and len(guid[0]) == 16:
        return f"guid:{guid[0].hex()}"
    uuid = _first((entry.get("attributes") or {}).get("entryUUID")).lower()
    if uuid:
        return f"uuid:{uuid}"
    return f"dn:{normalise_dn(entry['dn'])}"


def _login(entry: dict[str, Any]) -> str:
    attributes = entry.get("attributes") or {}
    for name in LOGIN_ATTRIBUTES:
        value = _first(attributes.get(name))
        if value:
            return value[:128]
    first_rdn = entry["dn"].split(",", 1)[0]
    return first_rdn.partition("=")[2].strip()[:128] or entry["dn"][:128]


def _first(value: object) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")

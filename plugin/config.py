"""The "Gate" section of Orthanc's configuration, read once into a typed, validated object."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugin.errors import ConfigError
from plugin.policies.network import Network, parse_networks
from plugin.policies.roles import is_dn_key, keys_matching_nothing, normalise_dn
from plugin.policies.types import ROLE_NAMES


@dataclass(frozen=True)
class _Key:
    name: str
    kind: type
    default: Any
    minimum: float | None = None


# Every key the Gate section accepts, with its safe default. Anything else is a start-up error.
_KEYS: tuple[_Key, ...] = (
    _Key("DatabaseUrl", str, None),
    _Key("DatabaseTimeoutSeconds", float, 5.0, 0.1),
    _Key("StateDirectory", str, None),
    _Key("SessionIdleMinutes", float, 30.0, 1),
    _Key("SessionMaxHours", float, 12.0, 0.1),
    _Key("SecureCookies", bool, None),
    _Key("IdentityCacheSeconds", float, 2.0, 0),
    _Key("BasicCredentialCacheSeconds", float, 60.0, 0),
    _Key("DecisionCacheSeconds", float, 1.0, 0),
    _Key("AuditCoalesceSeconds", float, 60.0, 0),
    _Key("AuditCheckpointSeconds", float, 300.0, 1),
    _Key("AuditCheckpointKeyFile", str, None),
    _Key("ContactKeyFile", str, None),
    _Key("HomePage", str, "/app/explorer.html"),
    _Key("Ldap", dict, None),
    _Key("MfaRequiredRoles", list, ["admin"]),
    _Key("LockoutFailures", float, 5.0, 1),
    _Key("LockoutMinutes", float, 15.0, 0.1),
    _Key("SignInFailuresPerAddress", float, 20.0, 1),
    _Key("MfaIssuer", str, "Orthanc Gate"),
    _Key("HpcsaPrefixes", list, ["MP", "DP", "PR", "PS", "DR", "MT", "OT", "RT", "SP", "DA", "DT", "PT"]),
    _Key("GrantPollSeconds", float, 1.0, 0.1),
    _Key("ResourceCacheEntries", float, 200000.0, 100),
    _Key("TrustedProxies", list, []),
)

DEFAULT_USER_FILTER = ("(&(|(objectClass=person)(objectClass=inetOrgPerson))"
                       "(|(uid={username})(sAMAccountName={username})(userPrincipalName={username})))")

# The "Ldap" sub-section: (kind, default). Absent section: no directory, local users only.
_LDAP_KEYS: dict[str, tuple[type, Any]] = {
    "Servers": (list, None),
    "StartTls": (bool, False),
    "CaFile": (str, None),
    "BindDn": (str, None),
    "BindPasswordFile": (str, None),
    "UserBase": (str, None),
    "UserFilter": (str, DEFAULT_USER_FILTER),
    "GroupSearch": (str, "memberOf"),
    "GroupBase": (str, None),
    "NestedGroups": (bool, False),
    "TimeoutSeconds": (float, 3.0),
    "MaxConcurrent": (float, 4.0),
    "RetrySeconds": (float, 10.0),
    "RecheckSeconds": (float, 900.0),
    "GroupRoles": (dict, None),
}
_BY_NAME = {k.name: k for k in _KEYS}


@dataclass(frozen=True)
class LdapConfig:
    servers: tuple[str, ...]
    start_tls: bool
    ca_file: str | None
    bind_dn: str | None
    bind_password: str | None
    user_base: str
    user_filter: str
    group_search: str  # memberOf: read the user's memberOf; member: search groups naming the user
    group_base: str | None
    nested_groups: bool
    timeout_seconds: float
    group_roles: dict[str, tuple[str, ...]]  # normalised group DN, or lower-cased group name -> roles
    max_concurrent: int = 4  # directory operations waiting at once; more are refused as "busy"
    retry_seconds: float = 10.0  # a server that failed is skipped this long
    recheck_seconds: float = 900.0  # a directory account is re-read at least this often
    warnings: tuple[str, ...] = ()  # what is worth saying in the log at start-up


@dataclass(frozen=True)
class DicomWebSettings:
    """What the DICOMweb plugin reads from its own section (DicomWeb) that the Gate's answers to
    DICOMweb searches must read alike (services/dicomweb_search.py)."""

    enabled: bool = True
    root: str = "/dicom-web/"
    host: str = ""
    ssl: bool = False
    qido_case_sensitive: bool | None = None  # absent: /tools/find's own default
    # Orthanc's own: the creator its dictionary lookup assumes for a private tag, and the keywords
    # its configuration adds to the dictionary (both change which search keys name a tag).
    default_private_creator: str = ""
    dictionary_keywords: tuple[tuple[str, int], ...] = ()


def dicomweb_settings(orthanc: dict[str, Any]) -> DicomWebSettings:
    """The DicomWeb section as the plugin reads it: Root always starting and ending with a slash."""
    creator = orthanc.get("DefaultPrivateCreator", "")
    dictionary = orthanc.get("Dictionary", {})
    keywords = tuple((entry[1], int(key.replace(",", ""), 16)) for key, entry in
                     (dictionary.items() if isinstance(dictionary, dict) else ())
                     if re.fullmatch(r"[0-9A-Fa-f]{4},[0-9A-Fa-f]{4}", key) and isinstance(entry, list)
                     and len(entry) >= 2 and isinstance(entry[1], str))
    section = orthanc.get("DicomWeb")
    if not isinstance(section, dict):
        section = {}
    root = section.get("Root", "/dicom-web/")
    root = root if isinstance(root, str) else "/dicom-web/"
    root = root if root.startswith("/") else "/" + root
    root = root if root.endswith("/") else root + "/"
    host = section.get("Host", "")
    case_sensitive = section.get("QidoCaseSensitive")
    return DicomWebSettings(enabled=section.get("Enable") is not False, root=root,
                            host=host if isinstance(host, str) else "", ssl=section.get("Ssl") is True,
                            qido_case_sensitive=case_sensitive if isinstance(case_sensitive, bool) else None,
                            default_private_creator=creator if isinstance(creator, str) else "",
                            dictionary_keywords=keywords)


def dicomweb_plugin_listed(orthanc: dict[str, Any]) -> bool:
    """Whether Orthanc's Plugins list loads a DICOMweb plugin (a file, or a folder holding one)."""
    entries = orthanc.get("Plugins", [])
    for entry in entries if isinstance(entries, list) else ():
        path = Path(str(entry))
        if path.is_dir() and any("DicomWeb" in child.name for child in path.iterdir()):
            return True
        if path.is_file() and "DicomWeb" in path.name:
            return True
    return False


@dataclass(frozen=True)
class GateConfig:
    database_url: str
    database_timeout_seconds: float
    state_directory: Path
    session_idle_minutes: float
    session_max_hours: float
    secure_cookies: bool
    identity_cache_seconds: float
    basic_credential_cache_seconds: float
    decision_cache_seconds: float
    audit_coalesce_seconds: float
    audit_checkpoint_seconds: float
    audit_checkpoint_key_file: Path
    audit_checkpoint_key_generated: bool
    contact_key_file: Path
    contact_key_generated: bool
    home_page: str
    ldap: LdapConfig | None = None
    mfa_required_roles: frozenset[str] = frozenset({"admin"})
    mfa_issuer: str = "Orthanc Gate"
    lockout_failures: int = 5
    lockout_minutes: float = 15.0
    sign_in_failures_per_address: int = 20
    hpcsa_prefixes: frozenset[str] = frozenset({"MP", "DP", "PR", "PS", "DR", "MT", "OT", "RT", "SP", "DA",
                                                "DT", "PT"})
    grant_poll_seconds: float = 1.0
    resource_cache_entries: int = 200000
    trusted_proxies: tuple[Network, ...] = ()
    dicomweb: DicomWebSettings = DicomWebSettings()

    @property
    def audit_spool_file(self) -> Path:
        return self.state_directory / "gate-audit.spool"


def strip_json_comments(text: str) -> str:
    """Remove // and /* */ comments (Orthanc's configuration files allow them) outside strings."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ConfigError("configuration: unterminated /* comment")
            i = end + 2
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_variables(text: str) -> str:
    """Replace ${VAR} and ${VAR:-default} the way Orthanc does before parsing its configuration."""
    def value(match: re.Match) -> str:
        default = (match.group(2) or "").strip()
        if len(default) >= 2 and default[0] == default[-1] and default[0] in "'\"":
            default = default[1:-1]
        return os.environ.get(match.group(1)) or default

    return _VARIABLE.sub(value, text)


def read_orthanc_config(path: str | Path) -> dict[str, Any]:
    """Read an Orthanc configuration file, or a folder of them (merged, as Orthanc does)."""
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise ConfigError(f"configuration {path}: no .json file there")
    merged: dict[str, Any] = {}
    for file in files:
        try:
            text = substitute_variables(file.read_text(encoding="utf-8"))
            merged.update(json.loads(strip_json_comments(text)))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"configuration {file}: {exc}") from exc
    return merged


def _checked(key: _Key, value: Any) -> Any:
    label = f"Gate.{key.name}"
    if key.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{label} must be true or false")
        return value
    if key.kind in (dict, list):
        if not isinstance(value, key.kind):
            raise ConfigError(f"{label} must be a JSON {'object' if key.kind is dict else 'list'}")
        return value
    if key.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{label} must be a number")
        if key.minimum is not None and value < key.minimum:
            raise ConfigError(f"{label} must be at least {key.minimum}")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{label} must be a non-empty string")
    return value


def load_gate_config(orthanc: dict[str, Any], base_dir: str | Path) -> GateConfig:
    """Validate the Gate section of an Orthanc configuration.

    `base_dir` is the folder relative paths are resolved against (Orthanc resolves its own
    `StorageDirectory` against the working directory it was started from).
    """
    section = orthanc.get("Gate", {})
    if not isinstance(section, dict):
        raise ConfigError("Gate must be a JSON object")
    unknown = sorted(set(section) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown key in the Gate section: Gate.{unknown[0]} "
                          f"(known keys: {', '.join(sorted(_BY_NAME))})")
    values = {k.name: _checked(k, section[k.name]) if k.name in section else k.default for k in _KEYS}

    base = Path(base_dir)
    storage = base / str(orthanc.get("StorageDirectory", "OrthancStorage"))
    state_dir = base / values["StateDirectory"] if values["StateDirectory"] else storage
    database_url = values["DatabaseUrl"] or f"sqlite:///{(state_dir / 'gate.sqlite').resolve()}"
    if not database_url.split(":", 1)[0]:
        raise ConfigError("Gate.DatabaseUrl must be an SQLAlchemy URL")
    if not values["HomePage"].startswith("/"):
        raise ConfigError("Gate.HomePage must be a path starting with /")

    checkpoint_key, checkpoint_generated = _key_file(values, "AuditCheckpointKeyFile", base,
                                                     state_dir / "gate-audit-checkpoint.key")
    contact_key, contact_generated = _key_file(values, "ContactKeyFile", base, state_dir / "gate-contact.key")
    secure = values["SecureCookies"]
    if secure is None:
        secure = bool(orthanc.get("SslEnabled", False))
    return GateConfig(
        database_url=database_url,
        database_timeout_seconds=values["DatabaseTimeoutSeconds"],
        state_directory=state_dir.resolve(),
        session_idle_minutes=values["SessionIdleMinutes"],
        session_max_hours=values["SessionMaxHours"],
        secure_cookies=secure,
        identity_cache_seconds=values["IdentityCacheSeconds"],
        basic_credential_cache_seconds=values["BasicCredentialCacheSeconds"],
        decision_cache_seconds=values["DecisionCacheSeconds"],
        audit_coalesce_seconds=values["AuditCoalesceSeconds"],
        audit_checkpoint_seconds=values["AuditCheckpointSeconds"],
        audit_checkpoint_key_file=checkpoint_key,
        audit_checkpoint_key_generated=checkpoint_generated,
        contact_key_file=contact_key,
        contact_key_generated=contact_generated,
        home_page=values["HomePage"],
        ldap=_ldap_config(values["Ldap"], base) if values["Ldap"] is not None else None,
        mfa_required_roles=_roles(values["MfaRequiredRoles"], "Gate.MfaRequiredRoles"),
        mfa_issuer=values["MfaIssuer"],
        lockout_failures=int(values["LockoutFailures"]),
        lockout_minutes=values["LockoutMinutes"],
        sign_in_failures_per_address=int(values["SignInFailuresPerAddress"]),
        hpcsa_prefixes=_hpcsa_prefixes(values["HpcsaPrefixes"]),
        grant_poll_seconds=values["GrantPollSeconds"],
        resource_cache_entries=int(values["ResourceCacheEntries"]),
        trusted_proxies=_networks(values["TrustedProxies"]),
        dicomweb=dicomweb_settings(orthanc),
    )


def _networks(value: list) -> tuple[Network, ...]:
    if not all(isinstance(item, str) for item in value):
        raise ConfigError('Gate.TrustedProxies must list addresses or networks, e.g. ["10.0.0.2", "10.1.0.0/16"]')
    try:
        return parse_networks(value)
    except ValueError as exc:
        raise ConfigError(f"Gate.TrustedProxies: {exc}") from None


def _hpcsa_prefixes(value: list) -> frozenset[str]:
    """HPCSA register prefixes (MP medical practitioner, DP dentist, ...): two or three capitals."""
    if not value or not all(isinstance(p, str) and re.fullmatch(r"[A-Z]{2,3}", p) for p in value):
        raise ConfigError("Gate.HpcsaPrefixes must be a non-empty list of two or three capital letters, "
                          'e.g. ["MP", "DP"]')
    return frozenset(value)


def _roles(value: list, label: str) -> frozenset[str]:
    if not all(isinstance(role, str) and role in ROLE_NAMES for role in value):
        raise ConfigError(f"{label} must list roles among {', '.join(sorted(ROLE_NAMES))}")
    return frozenset(value)


def _ldap_config(section: dict[str, Any], base: Path) -> LdapConfig:
    unknown = sorted(set(section) - set(_LDAP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key in the Gate section: Gate.Ldap.{unknown[0]} "
                          f"(known keys: {', '.join(sorted(_LDAP_KEYS))})")
    values = {}
    for name, (kind, default) in _LDAP_KEYS.items():
        values[name] = _checked(_Key(f"Ldap.{name}", kind, default, 0.1 if kind is float else None),
                                section[name]) if name in section else default
    servers = values["Servers"]
    if not servers or not all(isinstance(url, str) and url.startswith(("ldap://", "ldaps://")) for url in servers):
        raise ConfigError("Gate.Ldap.Servers must list ldap:// or ldaps:// URLs (tried in order)")
    if not values["UserBase"]:
        raise ConfigError("Gate.Ldap.UserBase is required (where to search for accounts)")
    if "{username}" not in values["UserFilter"]:
        raise ConfigError("Gate.Ldap.UserFilter must contain {username}")
    if values["GroupSearch"] not in ("memberOf", "member"):
        raise ConfigError('Gate.Ldap.GroupSearch must be "memberOf" or "member"')
    if values["GroupSearch"] == "member" and not values["GroupBase"]:
        raise ConfigError('Gate.Ldap.GroupBase is required when GroupSearch is "member"')
    group_roles: dict[str, tuple[str, ...]] = {}
    for group, roles in (values["GroupRoles"] or {}).items():
        roles = [roles] if isinstance(roles, str) else roles
        if not isinstance(roles, list) or not all(isinstance(r, str) and r in ROLE_NAMES for r in roles):
            raise ConfigError(f"Gate.Ldap.GroupRoles[{group!r}] must be a role or a list of roles "
                              f"({', '.join(sorted(ROLE_NAMES))})")
        key = normalise_dn(group) if is_dn_key(group) else group.strip().lower()
        group_roles[key] = tuple(roles)
    if not group_roles:
        raise ConfigError("Gate.Ldap.GroupRoles must map at least one group to roles (no mapping: no access)")
    password = None
    if values["BindPasswordFile"]:
        password_file = (base / values["BindPasswordFile"]).resolve()
        if not password_file.is_file():
            raise ConfigError(f"Gate.Ldap.BindPasswordFile: file not found: {password_file}")
        password = password_file.read_text(encoding="utf-8").strip()
    if any(url.startswith("ldaps://") for url in servers) and not values["StartTls"] and \
            any(url.startswith("ldap://") for url in servers):
        raise ConfigError("Gate.Ldap.Servers mixes ldaps:// and plain ldap:// servers without StartTls: a "
                          "server whose certificate fails would fall over to one without TLS")
    warnings = tuple(f"Gate.Ldap.GroupRoles: {key!r} can match no group ("
                     + ("give the group's full DN" if is_dn_key(key) else "a group name is matched only under "
                        "GroupBase, which is not set") + ")"
                     for key in keys_matching_nothing(group_roles, values["GroupBase"], values["UserBase"]))
    if values["CaFile"] and not (base / values["CaFile"]).is_file():
        raise ConfigError(f"Gate.Ldap.CaFile: file not found: {(base / values['CaFile']).resolve()}")
    return LdapConfig(
        servers=tuple(servers), start_tls=values["StartTls"],
        ca_file=str((base / values["CaFile"]).resolve()) if values["CaFile"] else None,
        bind_dn=values["BindDn"], bind_password=password, user_base=values["UserBase"],
        user_filter=values["UserFilter"], group_search=values["GroupSearch"], group_base=values["GroupBase"],
        nested_groups=values["NestedGroups"], timeout_seconds=values["TimeoutSeconds"], group_roles=group_roles,
        max_concurrent=max(1, int(values["MaxConcurrent"])), retry_seconds=values["RetrySeconds"],
        recheck_seconds=values["RecheckSeconds"], warnings=warnings)


def _key_file(values: dict[str, Any], name: str, base: Path, default: Path) -> tuple[Path, bool]:
    """A named key file must exist; an unnamed one is generated beside the store on first start."""
    if values[name]:
        path = (base / values[name]).resolve()
        if not path.is_file():
            raise ConfigError(f"Gate.{name}: key file not found: {path}")
        return path, False
    return default.resolve(), True


def open_to_any_modality(orthanc: dict[str, Any]) -> str | None:
    """A warning when Orthanc's configuration accepts C-STORE from any AE title (Orthanc's default):
    C-STORE bypasses HTTP and the Gate, so anyone who reaches the DICOM port can then file a study
    under any PatientID. None when stores are limited to the modalities listed in DicomModalities."""
    if orthanc.get("DicomServerEnabled", True) is False or orthanc.get("DicomAlwaysAllowStore", True) is False:
        return None
    return ("Gate: C-STORE is accepted from any AE title (DicomAlwaysAllowStore is true): anyone who can "
            "reach the DICOM port can file a study under any PatientID. To accept stores only from your "
            "modalities, set DicomAlwaysAllowStore to false and list each one in DicomModalities with "
            '"AllowStore": true (and keep DicomCheckModalityHost true); see docs/security-model.md.')


def config_base(path: str | Path) -> Path:
    """The folder Orthanc resolves relative paths of this configuration against."""
    path = Path(path).resolve()
    return path if path.is_dir() else path.parent


def ensure_secret_file(path: Path, make_secret: Callable[[], bytes]) -> bool:
    """Create a root-only secret file if it does not exist yet. True when it was created now."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(make_secret())
        handle.flush()
        os.fsync(handle.fileno())
    return True

"""The "Gate" section of Orthanc's configuration, read once into a typed, validated object."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugin.errors import ConfigError
from plugin.policies.levels import LEVEL_NAMES, parse_level
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
    _Key("ContactPreviousKeyFiles", list, []),
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
    _Key("PublicUrl", str, None),
    _Key("PracticeName", str, "Orthanc Gate"),
    _Key("Referrals", dict, {}),
    _Key("Outbox", dict, {}),
    _Key("Smtp", dict, None),
    _Key("Sms", dict, None),
    _Key("Shares", dict, {}),
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

# The "Referrals" sub-section: what linking a new study to its referring doctor grants.
_REFERRAL_KEYS: dict[str, tuple[type, Any]] = {
    "Enabled": (bool, True),
    "DefaultLevel": (str, "download"),
    "GrantDays": (float, None),  # none: the grant does not expire
    "NotifyDoctors": (bool, True),
}
# The "Outbox" sub-section: how messages are retried.
_OUTBOX_KEYS: dict[str, tuple[type, Any]] = {
    "MaxAttempts": (float, 8.0),
    "RetryBaseSeconds": (float, 30.0),
    "RetryMaxSeconds": (float, 3600.0),
    "PollSeconds": (float, 5.0),
    "SendTimeoutSeconds": (float, 20.0),
    "WelcomeLinkHours": (float, 72.0),
}
# The "Smtp" sub-section. Absent: e-mail is not sent (messages wait in the outbox, visible to admins).
_SMTP_KEYS: dict[str, tuple[type, Any]] = {
    "Host": (str, None),
    "Port": (float, None),
    "Security": (str, "starttls"),  # starttls | tls (implicit, e.g. port 465) | none (a local relay only)
    "Username": (str, None),
    "PasswordFile": (str, None),
    "From": (str, None),
    "CaFile": (str, None),
}
# The "Sms" sub-section. Absent: no SMS.
_SMS_KEYS: dict[str, tuple[type, Any]] = {
    "Gateway": (str, None),  # clickatell | bulksms | generic
    "Url": (str, None),  # the gateway's default for clickatell and bulksms
    "ApiKeyFile": (str, None),  # clickatell
    "Username": (str, None),  # bulksms (token id)
    "PasswordFile": (str, None),  # bulksms (token secret)
    "From": (str, None),  # sender id, where the gateway allows one
    "Method": (str, "POST"),  # generic
    "Headers": (dict, {}),  # generic; values may use {api_key}
    "Body": (str, None),  # generic: a template with {to}, {text} (JSON-escaped) and {from}
}
# The "Shares" sub-section: patients' links to their studies.
_SHARE_KEYS: dict[str, tuple[type, Any]] = {
    "Enabled": (bool, True),
    "DefaultValidHours": (float, 168.0),
    "MaxValidHours": (float, 720.0),
    "SessionMinutes": (float, 30.0),  # a viewing session, after the link is opened
    "PasswordFailures": (float, 5.0),  # wrong passwords that lock a share ...
    "PasswordLockMinutes": (float, 15.0),  # ... for this long
    "BadLinksPerAddress": (float, 30.0),  # wrong links from one address that throttle it ...
    "BadLinkMinutes": (float, 15.0),  # ... counted over, and throttled for, this long
    "ReminderHours": (float, None),  # a reminder this long before expiry; none: no reminder
    "PatientAccessLog": (bool, False),  # the share page lists who opened the studies (POPIA s23)
    "AccessLogNames": (bool, False),  # ... naming the clinicians (else role and practice only)
    "ContactPhone": (str, None),  # the practice's contact details on the share pages
    "ContactEmail": (str, None),
    "ContactAddress": (str, None),
}
SMS_GATEWAYS = ("clickatell", "bulksms", "generic")
SMTP_SECURITY = ("starttls", "tls", "none")


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
class ReferralSettings:
    enabled: bool = True
    default_level: str = "download"
    grant_days: float | None = None
    notify_doctors: bool = True


@dataclass(frozen=True)
class OutboxSettings:
    max_attempts: int = 8
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    poll_seconds: float = 5.0
    send_timeout_seconds: float = 20.0
    welcome_link_hours: float = 72.0


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # starttls | tls | none
    sender: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None


@dataclass(frozen=True)
class SmsSettings:
    gateway: str  # clickatell | bulksms | generic
    url: str
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    sender: str | None = None
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None


@dataclass(frozen=True)
class ShareSettings:
    enabled: bool = True
    default_valid_hours: float = 168.0
    max_valid_hours: float = 720.0
    session_minutes: float = 30.0
    password_failures: int = 5
    password_lock_minutes: float = 15.0
    bad_links_per_address: int = 30
    bad_link_minutes: float = 15.0
    reminder_hours: float | None = None
    patient_access_log: bool = False
    access_log_names: bool = False
    contact_phone: str = ""
    contact_email: str = ""
    contact_address: str = ""


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
    public_url: str = "http://localhost:8042"
    practice_name: str = "Orthanc Gate"
    storage_directory: Path | None = None  # Orthanc's StorageDirectory (the dashboard shows its free space)
    referrals: ReferralSettings = ReferralSettings()
    outbox: OutboxSettings = OutboxSettings()
    smtp: SmtpSettings | None = None
    sms: SmsSettings | None = None
    shares: ShareSettings = ShareSettings()
    contact_previous_key_files: tuple[Path, ...] = ()

    @property
    def audit_spool_file(self) -> Path:
        return self.state_directory / "gate-audit.spool"


def strip_json_comments(text: str) -> str:
    """Remove // and /* */ comments (Orthanc's configuration files allow them) outside strings.
    A comment becomes spaces and its line breaks stay, so a JSON error's line and column are the
    file's own."""
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
                out.append(" ")
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ConfigError("Configuration: unterminated /* comment")
            out.append(re.sub(r"[^\n]", " ", text[i:end + 2]))
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
    """Read an Orthanc configuration file, or a folder of them (merged, as Orthanc does: each file
    a JSON object, and no key in two files)."""
    path = Path(path)
    try:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".json" and not p.is_dir()) \
            if path.is_dir() else [path]
    except OSError as exc:
        raise ConfigError(f"Configuration {path}: {exc.strerror or exc}") from exc
    if not files:
        raise ConfigError(f"Configuration {path}: no .json file there")
    merged: dict[str, Any] = {}
    for file in files:
        try:
            text = substitute_variables(file.read_text(encoding="utf-8"))
            found = json.loads(strip_json_comments(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Configuration {file}: not valid JSON at line {exc.lineno}, column {exc.colno}: "
                              f"{exc.msg}") from exc
        except OSError as exc:
            raise ConfigError(f"Configuration {file}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise ConfigError(f"Configuration {file}: {exc}") from exc
        if not isinstance(found, dict):
            raise ConfigError(f"Configuration {file}: must be a JSON object ({{...}})")
        twice = sorted(set(found) & set(merged))
        if twice:
            raise ConfigError(f"Configuration {file}: {twice[0]} is also in another file of {path} (Orthanc "
                              "refuses a key defined in two files)")
        merged.update(found)
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
        raise ConfigError(f"Unknown key in the Gate section: Gate.{unknown[0]} "
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
        storage_directory=storage.resolve(),
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
        public_url=_public_url(values["PublicUrl"], orthanc),
        practice_name=values["PracticeName"].strip(),
        referrals=_referral_settings(values["Referrals"]),
        outbox=_outbox_settings(values["Outbox"]),
        smtp=_smtp_settings(values["Smtp"], base) if values["Smtp"] is not None else None,
        sms=_sms_settings(values["Sms"], base) if values["Sms"] is not None else None,
        shares=_share_settings(values["Shares"]),
        contact_previous_key_files=_previous_keys(values["ContactPreviousKeyFiles"], base),
    )


def _sub_section(name: str, section: dict[str, Any], keys: dict[str, tuple[type, Any]]) -> dict[str, Any]:
    """A sub-section's values, checked like the Gate section's own (unknown keys refused)."""
    unknown = sorted(set(section) - set(keys))
    if unknown:
        raise ConfigError(f"Unknown key in the Gate section: Gate.{name}.{unknown[0]} "
                          f"(known keys: {', '.join(sorted(keys))})")
    return {key: _checked(_Key(f"{name}.{key}", kind, default, 0 if kind is float else None), section[key])
            if key in section else default for key, (kind, default) in keys.items()}


def _public_url(value: str | None, orthanc: dict[str, Any]) -> str:
    """The address links in messages start with (no trailing slash)."""
    if value is None:
        scheme = "https" if orthanc.get("SslEnabled") else "http"
        return f"{scheme}://localhost:{orthanc.get('HttpPort', 8042)}"
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value.strip()):
        raise ConfigError('Gate.PublicUrl must be an http:// or https:// address, e.g. "https://pacs.example.co.za"')
    return value.strip().rstrip("/")


def _referral_settings(section: dict[str, Any]) -> ReferralSettings:
    values = _sub_section("Referrals", section, _REFERRAL_KEYS)
    if parse_level(values["DefaultLevel"]) is None:
        raise ConfigError(f"Gate.Referrals.DefaultLevel must be one of {', '.join(LEVEL_NAMES)}")
    if values["GrantDays"] is not None and values["GrantDays"] <= 0:
        raise ConfigError("Gate.Referrals.GrantDays must be more than 0 (leave it out for grants that do not expire)")
    return ReferralSettings(values["Enabled"], values["DefaultLevel"], values["GrantDays"], values["NotifyDoctors"])


def _share_settings(section: dict[str, Any]) -> ShareSettings:
    values = _sub_section("Shares", section, _SHARE_KEYS)
    for key in ("DefaultValidHours", "MaxValidHours", "SessionMinutes", "PasswordLockMinutes", "BadLinkMinutes"):
        if values[key] <= 0:
            raise ConfigError(f"Gate.Shares.{key} must be more than 0")
    if values["DefaultValidHours"] > values["MaxValidHours"]:
        raise ConfigError("Gate.Shares.DefaultValidHours must be at most MaxValidHours")
    if values["PasswordFailures"] < 1 or values["BadLinksPerAddress"] < 1:
        raise ConfigError("Gate.Shares.PasswordFailures and BadLinksPerAddress must be at least 1")
    if values["ReminderHours"] is not None and not 0 < values["ReminderHours"] < values["MaxValidHours"]:
        raise ConfigError("Gate.Shares.ReminderHours must be more than 0 and less than MaxValidHours "
                          "(leave it out for no reminder)")
    return ShareSettings(values["Enabled"], values["DefaultValidHours"], values["MaxValidHours"],
                         values["SessionMinutes"], int(values["PasswordFailures"]), values["PasswordLockMinutes"],
                         int(values["BadLinksPerAddress"]), values["BadLinkMinutes"], values["ReminderHours"],
                         values["PatientAccessLog"], values["AccessLogNames"],
                         (values["ContactPhone"] or "").strip(), (values["ContactEmail"] or "").strip(),
                         (values["ContactAddress"] or "").strip())


def _previous_keys(values: list[Any], base: Path) -> tuple[Path, ...]:
    """Older contact keys, still read (never written with) until `gatectl contacts-reencrypt` is run."""
    paths = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError("Gate.ContactPreviousKeyFiles must be a list of file paths")
        path = (base / value).resolve()
        if not path.is_file():
            raise ConfigError(f"Gate.ContactPreviousKeyFiles: file not found: {path}")
        paths.append(path)
    return tuple(paths)


def _outbox_settings(section: dict[str, Any]) -> OutboxSettings:
    values = _sub_section("Outbox", section, _OUTBOX_KEYS)
    if values["MaxAttempts"] < 1 or values["RetryBaseSeconds"] <= 0 or values["PollSeconds"] <= 0 \
            or values["SendTimeoutSeconds"] <= 0 or values["WelcomeLinkHours"] <= 0:
        raise ConfigError("Gate.Outbox: MaxAttempts must be at least 1, and the times more than 0")
    if values["RetryMaxSeconds"] < values["RetryBaseSeconds"]:
        raise ConfigError("Gate.Outbox.RetryMaxSeconds must be at least RetryBaseSeconds")
    return OutboxSettings(int(values["MaxAttempts"]), values["RetryBaseSeconds"], values["RetryMaxSeconds"],
                          values["PollSeconds"], values["SendTimeoutSeconds"], values["WelcomeLinkHours"])


def _secret(name: str, value: str | None, base: Path) -> str | None:
    """The first line of a secret file named in the configuration (secrets never sit in it)."""
    if value is None:
        return None
    path = (base / value).resolve()
    if not path.is_file():
        raise ConfigError(f"Gate.{name}: file not found: {path}")
    return path.read_text(encoding="utf-8").strip()


def _smtp_settings(section: dict[str, Any], base: Path) -> SmtpSettings:
    values = _sub_section("Smtp", section, _SMTP_KEYS)
    if not values["Host"] or not values["From"]:
        raise ConfigError("Gate.Smtp needs Host and From (the sender's address)")
    security = values["Security"]
    if security not in SMTP_SECURITY:
        raise ConfigError(f"Gate.Smtp.Security must be one of {', '.join(SMTP_SECURITY)}")
    port = values["Port"] if values["Port"] is not None else {"tls": 465, "starttls": 587}.get(security, 25)
    if not 1 <= port <= 65535 or port != int(port):
        raise ConfigError("Gate.Smtp.Port must be a port number")
    if (values["Username"] is None) != (values["PasswordFile"] is None):
        raise ConfigError("Gate.Smtp: give both Username and PasswordFile, or neither")
    if values["CaFile"] and not (base / values["CaFile"]).is_file():
        raise ConfigError(f"Gate.Smtp.CaFile: file not found: {(base / values['CaFile']).resolve()}")
    password = _secret("Smtp.PasswordFile", values["PasswordFile"], base)
    return SmtpSettings(host=values["Host"], port=int(port), security=security, sender=values["From"],
                        username=values["Username"], password=password,
                        ca_file=str((base / values["CaFile"]).resolve()) if values["CaFile"] else None)


SMS_DEFAULT_URLS = {"clickatell": "https://platform.clickatell.com/messages",
                    "bulksms": "https://api.bulksms.com/v1/messages"}


def _sms_settings(section: dict[str, Any], base: Path) -> SmsSettings:
    values = _sub_section("Sms", section, _SMS_KEYS)
    gateway = values["Gateway"]
    if gateway not in SMS_GATEWAYS:
        raise ConfigError(f"Gate.Sms.Gateway must be one of {', '.join(SMS_GATEWAYS)}")
    url = values["Url"] or SMS_DEFAULT_URLS.get(gateway)
    if not url or not re.fullmatch(r"https?://\S+", url):
        raise ConfigError("Gate.Sms.Url must be the gateway's http:// or https:// address")
    api_key = _secret("Sms.ApiKeyFile", values["ApiKeyFile"], base)
    password = _secret("Sms.PasswordFile", values["PasswordFile"], base)
    if gateway == "clickatell" and not api_key:
        raise ConfigError("Gate.Sms: the clickatell gateway needs ApiKeyFile")
    if gateway == "bulksms" and not (values["Username"] and password):
        raise ConfigError("Gate.Sms: the bulksms gateway needs Username and PasswordFile")
    if gateway == "generic":
        if not values["Body"] or "{text}" not in values["Body"] or "{to}" not in values["Body"]:
            raise ConfigError("Gate.Sms.Body must be a template holding {to} and {text}")
        if values["Method"] not in ("POST", "PUT"):
            raise ConfigError('Gate.Sms.Method must be "POST" or "PUT"')
    headers = values["Headers"]
    if not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError("Gate.Sms.Headers must map header names to strings")
    return SmsSettings(gateway=gateway, url=url, api_key=api_key, username=values["Username"], password=password,
                       sender=values["From"], method=values["Method"], headers=tuple(headers.items()),
                       body=values["Body"])


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
        raise ConfigError(f"Unknown key in the Gate section: Gate.Ldap.{unknown[0]} "
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


def holds_python_lock(orthanc: dict[str, Any], python_plugin_version: str) -> str | None:
    """A warning when the Python plugin (4.3 and later) would let go of Python's lock while Orthanc
    does the work the Gate asks of it, and is not told to (`Python.AllowThreads`, off by default).

    With the lock held, every request's filter waits for the slowest core call any Python code is
    making: on Orthanc 1.12 the DICOMweb plugin asks the Gate's /tools/find once per frame, and
    frames then come at about two thirds of the speed (bench/viewer_throughput.py). None on the
    Python plugin before 4.3 (it always holds the lock) or when the option is on."""
    try:
        version = tuple(int(part) for part in python_plugin_version.split(".")[:2])
    except ValueError:
        return None
    section = orthanc.get("Python")
    if version < (4, 3) or (isinstance(section, dict) and section.get("AllowThreads") is True):
        return None
    return (f"Gate: the Python plugin {python_plugin_version} holds Python's lock during every call the Gate "
            "makes to Orthanc, so each HTTP request waits for the slowest of them; set "
            '"Python": {"AllowThreads": true} in Orthanc\'s configuration (see docs/configuration.md).')


def config_base(path: str | Path) -> Path:
    """The folder Orthanc resolves relative paths of this configuration against."""
    path = Path(path).resolve()
    return path if path.is_dir() else path.parent


def ensure_secret_file(path: Path, make_secret: Callable[[], bytes]) -> bool:
    """Create a root-only secret file if it does not exist yet. True when it was created now.

    Written whole under a temporary name, then linked into place: nodes starting together on one
    shared folder never read a half-written key, and the first link wins (the others keep its key)."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(make_secret())
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(temporary)

"""Orthanc's configuration as an admin may see and check it: the effective configuration with every
secret redacted, and a check of a configuration file before Orthanc is started with it (the Gate
section as the plugin validates it at start-up, and the Orthanc keys a start depends on), each
problem naming its key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from plugin.config import load_gate_config, read_orthanc_config
from plugin.errors import ConfigError

REDACTED = "********"
# A key whose value is a secret, whatever section it is in (Password, BindPassword, ApiKey, Token,
# Secret, PrivateKey, Credentials...). Not the *File keys: a path is not the secret it names.
SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|apikey|api_key|privatekey|private_key|credential"
                        r"|authorization|cookie)(?!.*file$)")
# Orthanc's keys whose values hold credentials in structures (checked by shape, below).
USER_MAPS = ("RegisteredUsers",)  # {"user": "password"}
# {"name": [url, user, password]} or {"name": {"Url", "Username", "Password", ...}}: Orthanc's peers,
# the DICOMweb plugin's servers.
PEERS = ("OrthancPeers", "Servers")
HEADERS = ("HttpHeaders", "Headers")  # HTTP headers given to peers, the SMS gateway...: may carry tokens
URL_KEYS = re.compile(r"(?i)(url|uri|dsn|connection)")
CONFIG_KEY = re.compile(r"\bGate(?:\.[A-Za-z0-9_]+)+")
PORT_KEYS = ("HttpPort", "DicomPort")


@dataclass(frozen=True)
class Problem:
    key: str  # dotted, e.g. Gate.SessionIdleMinutes; "" for the file as a whole
    message: str


@dataclass(frozen=True)
class ConfigCheck:
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def redacted_configuration(configuration: dict[str, Any]) -> dict[str, Any]:
    """The configuration with every secret replaced by REDACTED (a copy; the input is unchanged)."""
    return _redact(configuration, "")


def _redact(value: Any, key: str) -> Any:
    if key in PEERS:
        return _redact_peers(value)
    if isinstance(value, dict):
        if key in USER_MAPS or key in HEADERS:
            return {name: REDACTED for name in value}
        return {name: _redact(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, "") for item in value]
    if isinstance(value, str) and value:
        if SECRET_KEY.search(key):
            return REDACTED
        if URL_KEYS.search(key) or "://" in value:
            return _without_password(value)
    elif SECRET_KEY.search(key) and value is not None and not isinstance(value, bool):
        return REDACTED
    return value


def _redact_peers(peers: Any) -> Any:
    """OrthancPeers: a peer as [url, user, password] keeps its url and user."""
    if not isinstance(peers, dict):
        return _redact(peers, "")
    shown: dict[str, Any] = {}
    for name, peer in peers.items():
        if isinstance(peer, list):
            head = [_redact(item, "") for item in peer[:2]]
            shown[name] = head + [REDACTED for _ in peer[2:]]
        else:
            shown[name] = _redact(peer, "")
    return shown


def _without_password(text: str) -> str:
    """A URL's password (scheme://user:password@host) replaced; anything else unchanged."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if parts.password is None:
        return text
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{REDACTED}@{host}"))


def check_config_file(path: str | Path) -> ConfigCheck:
    """Would Orthanc with the Gate start with this configuration file (or folder)? Each problem
    names its key. The file is read as Orthanc reads it (comments, ${VARIABLES})."""
    path = Path(path)
    try:
        configuration = read_orthanc_config(path)
    except ConfigError as exc:
        return ConfigCheck([Problem("", _capitalised(exc.message))])
    problems = _orthanc_problems(configuration, path.parent if path.is_file() else path)
    try:
        load_gate_config(configuration, path.parent if path.is_file() else path)
    except ConfigError as exc:
        named = CONFIG_KEY.search(exc.message)
        problems.append(Problem(named.group(0) if named else "Gate", _capitalised(exc.message)))
    return ConfigCheck(problems)


def _orthanc_problems(configuration: dict[str, Any], base: Path) -> list[Problem]:
    """The Orthanc keys a start depends on that can be checked for certain."""
    problems = []
    for key in PORT_KEYS:
        value = configuration.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536):
            problems.append(Problem(key, f"{key} must be a port number (1 to 65535)"))
    plugins = configuration.get("Plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        problems.append(Problem("Plugins", "Plugins must be a list of paths"))
    else:
        for entry in plugins:
            if not (base / entry).exists():
                problems.append(Problem("Plugins", f"Plugin not found: {base / entry}"))
    script = configuration.get("PythonScript")
    if script is not None and (not isinstance(script, str) or not (base / script).is_file()):
        problems.append(Problem("PythonScript", f"The Python script is not found: {script}"))
    for key in ("StorageDirectory", "IndexDirectory"):
        if key in configuration and not isinstance(configuration[key], str):
            problems.append(Problem(key, f"{key} must be a folder path"))
    return problems


def _capitalised(message: str) -> str:
    return message[:1].upper() + message[1:]

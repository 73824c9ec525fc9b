"""Orthanc's configuration as an admin may see and check it: the effective configuration with every
secret redacted, and a check of a configuration file before Orthanc is started with it (the Gate
section as the plugin validates it at start-up, the files it names, and the Orthanc keys a start
depends on), each problem naming its key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugin.config import config_base, load_gate_config, read_orthanc_config
from plugin.errors import ConfigError

REDACTED = "********"
# Words that make a key's value a secret, wherever it is (Password, BindPassword, ApiKey, ApiKeys,
# SecretKey, PrivateKey, Token, Credentials, Authorization, Cookie...), matched on the words of the
# key's name so that Keycloak or KeepAlive are not. A key whose last word is File, Path... names
# where a secret is, and a path is not the secret; one whose last word is Failures, Minutes... is a
# setting about secrets (Shares.PasswordFailures): both stay readable.
SECRET_WORDS = frozenset({"password", "passwords", "passwd", "pwd", "passphrase", "secret", "secrets", "token",
                          "tokens", "credential", "credentials", "authorization", "cookie", "cookies", "key", "keys",
                          "apikey", "apikeys", "privatekey", "signature"})
NOT_SECRET_LAST_WORDS = frozenset({"file", "files", "path", "paths", "dir", "directory", "folder", "failures",
                                   "attempts", "count", "length", "seconds", "minutes", "hours", "days", "validity",
                                   "enabled", "level", "type", "mode", "name", "names"})
NAME_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Orthanc's keys whose values hold credentials in structures (handled by shape, below).
USER_MAPS = ("RegisteredUsers",)  # {"user": "password"}
# {"name": [url, user, password]} or {"name": {"Url", "Username", "Password", ...}}: Orthanc's peers,
# the DICOMweb plugin's servers.
PEERS = ("OrthancPeers", "Servers")
HEADERS = ("HttpHeaders", "Headers")  # HTTP headers given to peers, the SMS gateway...: may carry tokens
# Secrets inside a text: a URL's password (scheme://user:password@host), and name=value or
# "name": "value" pairs whose name is a secret's (connection strings, query strings, JSON templates).
URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^:/@\s]*):([^@/\s]*)@")
INLINE_NAME = (r"(?:[\w\-]*(?:password|passwd|secret|token|api[_\-]?key|access[_\-]?key|account[_\-]?key|signature)"
               r"[\w\-]*|pwd|sig)")
INLINE_PAIR = re.compile(rf"(?i)\b({INLINE_NAME}\s*=\s*)('[^']*'|\"[^\"]*\"|[^;&\s,]*)")
INLINE_JSON = re.compile(rf"(?i)(\"{INLINE_NAME}\"\s*:\s*)(\"(?:[^\"\\]|\\.)*\"|[^,}}\s]+)")

CONFIG_KEY = re.compile(r"\bGate(?:\.[A-Za-z0-9_]+)+")
PORT_KEYS = ("HttpPort", "DicomPort")
# Orthanc reads these as Booleans and refuses another JSON type (true or false, not "true").
BOOLEAN_KEYS = ("AuthenticationEnabled", "RemoteAccessAllowed", "SslEnabled", "HttpServerEnabled",
                "DicomServerEnabled", "WebDavEnabled", "HttpDescribeErrors", "KeepAlive", "HttpCompressionEnabled",
                "DicomAlwaysAllowEcho", "DicomAlwaysAllowStore", "DicomAlwaysAllowFind",
                "DicomAlwaysAllowFindWorklist", "DicomAlwaysAllowGet", "DicomAlwaysAllowMove",
                "DicomCheckModalityHost", "StorageCompression")
STRING_KEYS = ("Name", "StorageDirectory", "IndexDirectory", "DicomAet", "SslCertificate")
# Orthanc 1.10 allows letters, digits and dashes in these names, 1.12 underscores too.
NAMED_SECTIONS = ("DicomModalities", "OrthancPeers")
SECTION_NAME = re.compile(r"[A-Za-z0-9_\-]+")


@dataclass(frozen=True)
class Problem:
    key: str  # dotted, e.g. Gate.SessionIdleMinutes; "" for the file as a whole
    message: str  # a sentence, capitalised


@dataclass(frozen=True)
class ConfigCheck:
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def redacted_configuration(configuration: dict[str, Any]) -> dict[str, Any]:
    """The configuration with every secret replaced by REDACTED (a copy; the input is unchanged)."""
    return _redact(configuration, secret=False)


def is_secret_name(name: str) -> bool:
    """Whether a key's value is a secret, by the words of its name (ApiKey, BindPassword, api_key...)."""
    words = [word.lower() for word in NAME_WORD.findall(name)]
    return bool(words) and words[-1] not in NOT_SECRET_LAST_WORDS and any(word in SECRET_WORDS for word in words)


def _redact(value: Any, secret: bool) -> Any:
    """`secret`: the value is under a secret's name, and so is everything below it but the names
    of keys and true/false (a list of API keys, a map of tokens, a plugin's Authorization section)."""
    if isinstance(value, dict):
        return {name: _redact_entry(name, item, secret) for name, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, secret) for item in value]
    if secret and value is not None and not isinstance(value, bool):
        return REDACTED
    if isinstance(value, str):
        return redacted_text(value)
    return value


def _redact_entry(name: str, value: Any, secret: bool) -> Any:
    if secret or is_secret_name(name):
        return _redact(value, True)
    if isinstance(value, dict) and (name in USER_MAPS or name in HEADERS):
        return {key: REDACTED for key in value}  # user names and header names stay
    if isinstance(value, dict) and name in PEERS:
        return {peer: _redact_peer(definition) for peer, definition in value.items()}
    return _redact(value, False)


def _redact_peer(definition: Any) -> Any:
    """A peer as [url, user, password, ...] keeps its url and user; as an object, its keys decide."""
    if isinstance(definition, list):
        return [_redact(item, False) for item in definition[:2]] + [REDACTED for _ in definition[2:]]
    return _redact(definition, False)


def redacted_text(text: str) -> str:
    """A text with the secrets written inside it replaced: a URL's password, and the values of
    password=..., token=..., AccountKey=..., "apiKey": "..." and the like."""
    text = URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    text = INLINE_PAIR.sub(rf"\g<1>{REDACTED}", text)
    return INLINE_JSON.sub(rf'\g<1>"{REDACTED}"', text)


def check_config_file(path: str | Path) -> ConfigCheck:
    """Would Orthanc with the Gate start, and work, with this configuration file (or folder)? Each
    problem names its key. The file is read as Orthanc reads it (comments, ${VARIABLES}, a folder
    of .json files); relative paths are taken from its folder, as Orthanc takes them."""
    try:
        configuration = read_orthanc_config(path)
    except ConfigError as exc:
        return ConfigCheck([Problem("", _capitalised(exc.message))])
    base = config_base(path)
    try:
        return ConfigCheck(_orthanc_problems(configuration, base) + _gate_problems(configuration, base))
    except OSError as exc:  # a folder it names that cannot be listed, say
        return ConfigCheck([Problem("", f"The check could not finish: {exc.filename}: {exc.strerror}")])


def _orthanc_problems(configuration: dict[str, Any], base: Path) -> list[Problem]:
    """The Orthanc keys a start (or the Gate's work) depends on, checked only where it is certain."""
    problems = []
    for key in PORT_KEYS:
        value = configuration.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536):
            problems.append(Problem(key, f"{key} must be a port number (1 to 65535)"))
    for key in BOOLEAN_KEYS:
        if key in configuration and not isinstance(configuration[key], bool):
            problems.append(Problem(key, f"{key} must be true or false"))
    for key in STRING_KEYS:
        if key in configuration and not isinstance(configuration[key], str):
            problems.append(Problem(key, f"{key} must be a string"))
    users = configuration.get("RegisteredUsers")
    if users is not None and (not isinstance(users, dict)
                              or not all(isinstance(p, (str, int, float)) for p in users.values())):
        problems.append(Problem("RegisteredUsers", 'RegisteredUsers must map user names to passwords: {"name": '
                                                   '"password"}'))
    for key in NAMED_SECTIONS:
        section = configuration.get(key)
        if section is None:
            continue
        if not isinstance(section, dict):
            problems.append(Problem(key, f"{key} must be a JSON object of named entries"))
            continue
        for name in section:
            if not SECTION_NAME.fullmatch(name):
                problems.append(Problem(f"{key}.{name}", f"Names in {key} may hold only letters, digits, dashes "
                                                         "and underscores"))
    if configuration.get("SslEnabled") is True and isinstance(configuration.get("SslCertificate", ""), str):
        certificate = base / configuration.get("SslCertificate", "certificate.pem")
        if not certificate.is_file():
            problems.append(Problem("SslCertificate", f"SslEnabled is true but the certificate is not found: "
                                                      f"{certificate}"))
    return problems + _plugin_problems(configuration, base) + _authentication_problems(configuration)


def _plugin_problems(configuration: dict[str, Any], base: Path) -> list[Problem]:
    """Orthanc skips a plugin it cannot find and starts without it: without the Python plugin, or
    with no script for it, Orthanc starts without the Gate."""
    problems = []
    plugins = configuration.get("Plugins", [])
    listed = isinstance(plugins, list) and all(isinstance(p, str) for p in plugins)
    if not listed:
        problems.append(Problem("Plugins", "Plugins must be a list of paths"))
        plugins = []
    for entry in plugins:
        if not (base / entry).exists():
            problems.append(Problem("Plugins", f"Plugin not found: {base / entry} (Orthanc would start without it)"))
    key, script = _python_script(configuration)
    if script is not None:
        if not isinstance(script, str) or not script.lower().endswith(".py"):
            problems.append(Problem(key, f"{key} must be the path of a .py file"))
        elif not _script_found(script, base):
            problems.append(Problem(key, f"The Python script is not found: {script}"))
    gate = "Gate" in configuration
    if gate and script is None:
        problems.append(Problem("PythonScript", "There is a Gate section but no PythonScript: Orthanc would start "
                                                "without the Gate"))
    if (gate or script is not None) and listed and not any(_is_python_plugin(base / entry) for entry in plugins):
        problems.append(Problem("Plugins", "No Python plugin (libOrthancPython.so) is in Plugins: Orthanc would "
                                           "start without the Gate"))
    return problems


def _authentication_problems(configuration: dict[str, Any]) -> list[Problem]:
    """With the Gate, Orthanc's own Basic authentication must be off: it answers before the Gate."""
    authentication = configuration.get("AuthenticationEnabled")
    turned_on = authentication is True or (authentication is None and configuration.get("RemoteAccessAllowed") is True)
    if "Gate" not in configuration or not turned_on:
        return []
    why = "" if authentication is True else " (left out, Orthanc turns it on when RemoteAccessAllowed is true)"
    return [Problem("AuthenticationEnabled", f"AuthenticationEnabled must be false with the Gate{why}: Orthanc's "
                    "own Basic authentication would refuse the Gate's users before the Gate sees them")]


def _python_script(configuration: dict[str, Any]) -> tuple[str, Any]:
    """The script the Python plugin runs: PythonScript, or Python.Path."""
    if "PythonScript" in configuration:
        return "PythonScript", configuration["PythonScript"]
    section = configuration.get("Python")
    if isinstance(section, dict) and "Path" in section:
        return "Python.Path", section["Path"]
    return "PythonScript", None


def _script_found(script: str, base: Path) -> bool:
    """The Python plugin takes a relative script path from the folder Orthanc is started in, which
    a check cannot know: found there (this process's folder) or beside the configuration will do."""
    path = Path(script)
    return path.is_file() if path.is_absolute() else (path.is_file() or (base / path).is_file())


def _is_python_plugin(path: Path) -> bool:
    """The entry is the Python plugin, or a folder holding it (a plugin missing is said already)."""
    if path.is_dir():
        return any("python" in child.name.lower() for child in path.iterdir() if not child.is_dir())
    return "python" in path.name.lower()


def _gate_problems(configuration: dict[str, Any], base: Path) -> list[Problem]:
    """The Gate section as the plugin validates it at start-up (which stops at the first problem),
    and every file it names (key files, password files, CA files) there and readable."""
    section = configuration.get("Gate")
    problems = _named_file_problems(section, base, "Gate") if isinstance(section, dict) else []
    try:
        load_gate_config(configuration, base)
    except ConfigError as exc:
        named = CONFIG_KEY.search(exc.message)
        key = named.group(0) if named else "Gate"
        message = exc.message.removeprefix(f"{key}: ")
        if not any(problem.key == key for problem in problems):
            problems.append(Problem(key, _capitalised(message)))
    except OSError as exc:  # a named file that could not be read, reported above unless it changed since
        if not problems:
            problems.append(Problem("Gate", f"A file the Gate section names could not be read: {exc.filename} "
                                            f"({exc.strerror})"))
    return problems


def _named_file_problems(section: dict[str, Any], base: Path, prefix: str) -> list[Problem]:
    """Each *File key (a path) and *Files key (a list of paths), in the section and below."""
    problems = []
    for name, value in section.items():
        key = f"{prefix}.{name}"
        if isinstance(value, dict):
            problems += _named_file_problems(value, base, key)
        elif name.endswith("File") and isinstance(value, str):
            problems += _file_problem(key, base / value)
        elif name.endswith("Files") and isinstance(value, list):
            for item in value:
                problems += _file_problem(key, base / item) if isinstance(item, str) else []
    return problems


def _file_problem(key: str, path: Path) -> list[Problem]:
    path = path.resolve()
    if not path.exists():
        return [Problem(key, f"File not found: {path}")]
    if not path.is_file():
        return [Problem(key, f"Not a file: {path}")]
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        return [Problem(key, f"The file cannot be read by this process ({exc.strerror}): {path}")]
    return []


def _capitalised(message: str) -> str:
    return message[:1].upper() + message[1:]

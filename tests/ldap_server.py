"""A real OpenLDAP server (Debian's slapd) for the directory tests.

Each LdapServer runs its own slapd on a free port in its own temporary folder, from a slapd.conf
written there (tests/ldap/slapd.conf.in; the system's /etc/ldap/slapd.d is never used), and is
stopped by the PID recorded when it was started, never by name. slapd runs in the foreground
(`-d 0`), so the recorded PID is slapd's own. stop() then start() brings the same directory back
on the same port, to play the directory going down and coming back.

The data is tests/ldap/directory.ldif. memberOf is computed by slapd's memberof overlay, which
only sees changes made over LDAP: so every entry but the groups is loaded with slapadd before
the first start, and the groupOfNames entries are added with ldapadd once slapd runs (slapadd
bypasses overlays and would leave every memberOf empty). Later group changes (add_member,
remove_member, move_user_to_group) go through ldapmodify too, so memberOf follows them.

memberOf is an operational attribute: a search returns it only when asked for by name (or "+").
The client tools run with LDAPNOINIT=1 so that no ldap.conf or ~/.ldaprc changes what they do.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from string import Template

from tests.harness import free_port, stop_by_pid

LDAP_DIR = Path(__file__).resolve().parent / "ldap"
DIRECTORY_LDIF = LDAP_DIR / "directory.ldif"
SLAPD_CONF_TEMPLATE = LDAP_DIR / "slapd.conf.in"
SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"

BASE_DN = "dc=gate,dc=test"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
ADMIN_DN, ADMIN_PASSWORD = f"cn=admin,{BASE_DN}", "admin secret"  # the rootdn
SERVICE_DN, SERVICE_PASSWORD = f"cn=gate-service,{PEOPLE_DN}", "service secret"
# groupOfNames needs at least one member: a group emptied by remove_member keeps this one, which
# names no entry (so no memberOf anywhere).
EMPTY_GROUP_MEMBER = f"cn=nobody,{BASE_DN}"

# The users in directory.ldif: uid -> (password, groups).
USERS: dict[str, tuple[str, list[str]]] = {
    "rad1": ("rad1 password 123", ["Radiologists"]),
    "ref1": ("ref1 password 123", ["Referrers"]),
    "nogroup": ("nogroup password 123", ["Cleaners"]),
    "adm1": ("adm1 password 123", ["PACS Admins"]),
    "züri": ("zuri password 123", ["Radiologists"]),
    "admin": ("directory admin 123", ["Cleaners"]),
}


def escape_dn_value(value: str) -> str:
    """An attribute value escaped for use in a DN (RFC 4514)."""
    escaped = re.sub(r'([,+"\\<>;=])', r"\\\1", value)
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def escape_filter_value(value: str) -> str:
    """An assertion value escaped for use in a search filter (RFC 4515)."""
    return "".join(f"\\{ord(c):02x}" if c in "*()\\\0" else c for c in value)


def user_dn(uid: str) -> str:
    return f"uid={escape_dn_value(uid)},{PEOPLE_DN}"


def group_dn(cn: str) -> str:
    return f"cn={escape_dn_value(cn)},{GROUPS_DN}"


def ldif_line(attribute: str, value: str) -> str:
    """One LDIF attribute line; base64 ("attr:: ...") unless the value is a safe ASCII string."""
    if re.fullmatch(r"[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*", value) \
            and not value.endswith(" "):
        return f"{attribute}: {value}"
    return f"{attribute}:: {base64.b64encode(value.encode()).decode()}"


def parse_ldif_values(text: str, attribute: str) -> list[str]:
    """The values of one attribute in unwrapped ldapsearch output (-LLL -o ldif-wrap=no)."""
    values = []
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if not sep or name.lower() != attribute.lower():
            continue
        if rest.startswith(":"):
            values.append(base64.b64decode(rest[1:].strip()).decode())
        else:
            values.append(rest.strip())
    return values


def ldap_env() -> dict[str, str]:
    return dict(os.environ, LDAPNOINIT="1")


def _split_groups(ldif: str) -> tuple[str, str]:
    """(every record but the groupOfNames ones, the groupOfNames records) of an LDIF text."""
    others, groups = [], []
    for record in re.split(r"\n[ \t]*\n", ldif.replace("\r\n", "\n")):
        lines = [line for line in record.splitlines() if not line.startswith("#")]
        if not any(line.lower().startswith("dn:") for line in lines):
            continue
        is_group = any(re.fullmatch(r"objectclass:\s*groupofnames\s*", line, re.IGNORECASE) for line in lines)
        (groups if is_group else others).append("\n".join(lines))
    return "\n\n".join(others) + "\n", "\n\n".join(groups) + "\n"


class LdapServer:
    """One slapd holding tests/ldap/directory.ldif (or `ldif`), on 127.0.0.1 and a free port."""

    def __init__(self, workdir: Path, ldif: Path = DIRECTORY_LDIF, debug: str = "0") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.ldif = Path(ldif)
        self.debug = debug  # slapd -d level; "0" logs nothing, "stats" logs every operation
        self.config_path = self.workdir / "slapd.conf"
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "slapd.log"
        self.pid: int | None = None
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._loaded = False

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> LdapServer:
        """Start slapd and wait until it answers; the first start also loads the data."""
        if self.running:
            return self
        groups = None
        if not self._loaded:
            groups = self._prepare()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self._proc = subprocess.Popen([SLAPD, "-f", str(self.config_path), "-h", f"{self.url}/", "-d", self.debug],
                                      cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT, env=ldap_env())
        self.pid = self._proc.pid
        self.wait_ready(timeout)
        if groups is not None:
            self._run("ldapadd", "-D", ADMIN_DN, "-w", ADMIN_PASSWORD, stdin=groups)
            self._loaded = True
        return self

    def _prepare(self) -> str:
        """Write slapd.conf, slapadd everything but the groups; returns the groups' LDIF."""
        template = Template(SLAPD_CONF_TEMPLATE.read_text())
        self.config_path.write_text(template.substitute(workdir=str(self.workdir)))
        self.data_dir.mkdir(exist_ok=True)
        others, groups = _split_groups(self.ldif.read_text(encoding="utf-8"))
        base_ldif = self.workdir / "base.ldif"
        base_ldif.write_text(others, encoding="utf-8")
        loaded = subprocess.run([SLAPADD, "-f", str(self.config_path), "-l", str(base_ldif)],
                                capture_output=True, text=True, timeout=60)
        if loaded.returncode != 0:
            raise RuntimeError(f"slapadd failed ({loaded.returncode}):\n{loaded.stdout}{loaded.stderr}")
        return groups

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"slapd exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"slapd did not listen within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the recorded PID (slapd closes the database and exits), SIGKILL if it does not."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)  # a paused slapd would not act on SIGTERM
        stop_by_pid(self._proc, signal.SIGTERM, 10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LdapServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # --- the client tools (ldapsearch, ldapwhoami, ldapmodify), simple binds ---

    def _run(self, tool: str, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([tool, "-x", "-H", self.url, *args], input=stdin, capture_output=True, text=True,
                                env=ldap_env(), timeout=30)
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def search(self, filter_: str, *attributes: str, bind_dn: str = SERVICE_DN, password: str = SERVICE_PASSWORD,
               base: str = BASE_DN, check: bool = False) -> subprocess.CompletedProcess:
        """ldapsearch -LLL, unwrapped; returncode 0 means the search ran (maybe with no entries)."""
        return self._run("ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=5", "-D", bind_dn,
                         "-w", password, "-b", base, filter_, *attributes, check=check)

    def whoami(self, bind_dn: str, password: str) -> subprocess.CompletedProcess:
        """ldapwhoami: returncode 0 and "dn:<bind_dn>" on stdout when the bind succeeds (49 when refused)."""
        return self._run("ldapwhoami", "-o", "nettimeout=5", "-D", bind_dn, "-w", password, check=False)

    def member_of(self, uid: str) -> list[str]:
        """The memberOf DNs of a user, as the service account sees them."""
        found = self.search(f"(uid={escape_filter_value(uid)})", "memberOf", check=True)
        return parse_ldif_values(found.stdout, "memberOf")

    def members(self, group_cn: str) -> list[str]:
        found = self.search("(objectClass=groupOfNames)", "member", bind_dn=ADMIN_DN, password=ADMIN_PASSWORD,
                            base=group_dn(group_cn), check=True)
        return parse_ldif_values(found.stdout, "member")

    def modify(self, ldif: str) -> None:
        """ldapmodify bound as the rootdn; raises if any change fails."""
        self._run("ldapmodify", "-D", ADMIN_DN, "-w", ADMIN_PASSWORD, stdin=ldif)

    def add(self, ldif: str) -> None:
        """ldapadd bound as the rootdn (entries added over LDAP, so memberOf follows groups)."""
        self._run("ldapadd", "-D", ADMIN_DN, "-w", ADMIN_PASSWORD, stdin=ldif)

    def delete(self, dn: str) -> None:
        self._run("ldapdelete", "-D", ADMIN_DN, "-w", ADMIN_PASSWORD, dn)

    def pause(self) -> None:
        """SIGSTOP to the recorded PID: slapd keeps its port open and answers nothing (hung)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def add_member(self, group_cn: str, uid: str) -> None:
        """Add a user to a group (dropping EMPTY_GROUP_MEMBER if the group had been emptied)."""
        change = f"add: member\n{ldif_line('member', user_dn(uid))}\n-\n"
        if EMPTY_GROUP_MEMBER.lower() in (m.lower() for m in self.members(group_cn)):
            change += f"delete: member\n{ldif_line('member', EMPTY_GROUP_MEMBER)}\n-\n"
        self.modify(f"{ldif_line('dn', group_dn(group_cn))}\nchangetype: modify\n{change}")

    def remove_member(self, group_cn: str, uid: str) -> None:
        """Remove a user from a group; a group left with no member keeps EMPTY_GROUP_MEMBER."""
        dn = user_dn(uid)
        remaining = [m for m in self.members(group_cn) if m.lower() != dn.lower()]
        if remaining:
            change = f"delete: member\n{ldif_line('member', dn)}\n-\n"
        else:
            change = f"replace: member\n{ldif_line('member', EMPTY_GROUP_MEMBER)}\n-\n"
        self.modify(f"{ldif_line('dn', group_dn(group_cn))}\nchangetype: modify\n{change}")

    def move_user_to_group(self, uid: str, old_group_cn: str, new_group_cn: str) -> None:
        self.add_member(new_group_cn, uid)
        self.remove_member(old_group_cn, uid)

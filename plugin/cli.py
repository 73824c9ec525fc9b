"""`gatectl`: admin commands that work on the store directly, with Orthanc running or not."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from plugin.audit.log import append_now
from plugin.audit.record import AuditRecord, iso_utc
from plugin.config import GateConfig, config_base, load_gate_config, read_orthanc_config
from plugin.errors import GateError
from plugin.services import server_config, user_import, users
from plugin.services.runtime import configured_cipher, ensure_secrets, open_mfa, open_store, verify_audit
from plugin.store import contacts
from plugin.store.db import Store


def _config(path: str) -> GateConfig:
    return load_gate_config(read_orthanc_config(path), config_base(path))


def _store(config: GateConfig) -> Store:
    ensure_secrets(config, lambda message: print(message, file=sys.stderr))
    return open_store(config)


def _audit(store: Store):  # noqa: ANN202 - an AuditSink
    return lambda record: append_now(store, record)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    _store(_config(args.config))
    print("store is up to date")
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    store = _store(_config(args.config))
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    data = {"username": args.name, "roles": args.role, **({"password": password} if password is not None else {}),
            **({users.MUST_CHANGE: False} if args.no_password_change else {})}
    created = users.create_user(store, _audit(store), None, users.GATECTL, time.time(), data)
    if password is None:
        print(f"created user {args.name} (no password: set one, or use an API key)")
    elif created[users.MUST_CHANGE]:
        print(f"created user {args.name}; the password must be changed at the first sign-in")
    else:
        print(f"created user {args.name}; the password need not be changed")
    return 0


def cmd_create_api_key(args: argparse.Namespace) -> int:
    store = _store(_config(args.config))
    data = {"name": args.name, "user": args.user, **({"expires_at": args.expires} if args.expires else {})}
    created = users.create_api_key(store, _audit(store), None, users.GATECTL, time.time(), data)
    print(f"API key {created['id']} {args.name!r} for {args.user} (shown once, stored hashed):")
    print(created["key"])
    return 0


def cmd_disable_user(args: argparse.Namespace) -> int:
    store = _store(_config(args.config))
    users.disable_user(store, _audit(store), users.GATECTL, time.time(), args.name)
    print(f"disabled {args.name}; their sessions are ended")
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    store = _store(_config(args.config))
    was_locked = users.unlock_user(store, _audit(store), users.GATECTL, time.time(), args.name)
    print(f"{args.name} can sign in again" if was_locked else f"{args.name} was not locked; failed sign-ins cleared")
    return 0


class ProgressBar:
    """A one-line bar redrawn with a carriage return, shown for files of `min_rows` rows or more."""

    def __init__(self, stream: TextIO, min_rows: int = 200, width: int = 30) -> None:
        self._stream, self._min_rows, self._width = stream, min_rows, width
        self._shown = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        if total < self._min_rows:
            return
        filled = self._width * done // total
        self._stream.write(f"\r{phase:<9} [{'#' * filled}{'.' * (self._width - filled)}] {done}/{total}")
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._shown = False


def cmd_import_users(args: argparse.Namespace) -> int:
    store = _store(_config(args.config))
    text = user_import.decode_csv(Path(args.file).read_bytes())
    bar = ProgressBar(sys.stderr)
    try:
        count = users.import_users(store, _audit(store), users.GATECTL, time.time(), text, args.dry_run, bar)
    except user_import.BadCsv as exc:
        bar.finish()
        for problem in exc.problems:
            for error in problem.errors:
                print(f"line {problem.line}: {error}", file=sys.stderr)
        print(f"gatectl: {exc.message}", file=sys.stderr)
        return 1
    bar.finish()
    print(f"{count} rows would be imported" if args.dry_run else f"imported {count} users")
    return 0


def cmd_totp_reset(args: argparse.Namespace) -> int:
    config = _config(args.config)
    store = _store(config)
    users.reset_mfa(store, _audit(store), open_mfa(config, store), users.GATECTL, time.time(), args.name)
    print(f"one-time codes reset for {args.name}; they set them up again at their next sign-in")
    return 0


def cmd_ensure_admin(args: argparse.Namespace) -> int:
    store = _store(_config(args.config))
    created = users.ensure_first_admin(store, _audit(store), time.time())
    if created is None:
        print("An admin account exists already; sign in with it.")
    else:
        username, password = created
        print(f"Created the first admin.\n  username: {username}\n  one-time password: {password}\n"
              "You will choose your own password at the first sign-in.")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    config = _config(args.config)
    store = Store(config.database_url, config.database_timeout_seconds)
    report = verify_audit(config, store)
    if report.ok:
        print(f"audit chain OK: {report.rows} rows, {report.checkpoints} checkpoints verified")
        return 0
    print(f"audit chain BROKEN at row {report.bad_row}: {report.problem}", file=sys.stderr)
    return 1


def cmd_contacts_reencrypt(args: argparse.Namespace) -> int:
    """After a new ContactKeyFile is made and the old one listed in ContactPreviousKeyFiles: rewrite
    every encrypted contact detail (and TOTP secret) with the new key, so the old one can go."""
    config = _config(args.config)
    store = _store(config)
    with store.transaction() as db:
        done, unreadable = contacts.reencrypt(db, configured_cipher(config))
    _audit(store)(AuditRecord(ts=iso_utc(time.time()), actor="gatectl", action="contacts.reencrypt",
                              outcome="success" if not unreadable else "failure",
                              reason=f"{done} values re-encrypted, {unreadable} unreadable with the configured keys"))
    print(f"{done} values re-encrypted with {config.contact_key_file}")
    if unreadable:
        print(f"{unreadable} values could not be read with any configured key; they were left as they are",
              file=sys.stderr)
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Would Orthanc with the Gate start with FILE? Each problem on stderr as KEY: message."""
    check = server_config.check_config_file(args.file)
    if check.ok:
        print(f"OK: {args.file}")
        return 0
    for problem in check.problems:
        print(f"{problem.key or args.file}: {problem.message}", file=sys.stderr)
    return 1


# Commands that read no store, and need no --config.
WITHOUT_STORE = ("check-config",)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="gatectl", description=__doc__)
    # --config before or after the command: `gatectl --config F cmd` and `gatectl cmd --config F`.
    top.add_argument("--config", dest="config_before", metavar="CONFIG",
                     help="Orthanc configuration file (or folder); also accepted after the command")
    sub = top.add_subparsers(dest="command", required=True)

    def command(name: str, func, help_text: str) -> argparse.ArgumentParser:  # noqa: ANN001
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", help="Orthanc configuration file (or folder)")
        p.set_defaults(func=func)
        return p

    p = command("create-user", cmd_create_user, "create a local user")
    p.add_argument("name")
    p.add_argument("--role", action="append", required=True)
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input; it "
                   "must be changed at the first sign-in, unless --no-password-change")
    p.add_argument("--no-password-change", action="store_true",
                   help="the password need not be changed at the first sign-in (a service account that uses Basic, "
                   "such as a DICOMweb client, cannot change it)")
    p = command("create-api-key", cmd_create_api_key, "create an API key; prints it once, on the last line")
    p.add_argument("name")
    p.add_argument("--user", required=True)
    p.add_argument("--expires", metavar="WHEN", help="ISO 8601 end date and time, e.g. 2027-06-30T17:00:00+02:00")
    p = command("disable-user", cmd_disable_user, "disable a user and end their sessions")
    p.add_argument("name")
    p = command("import-users", cmd_import_users, "create the users of a CSV file, all or none; every bad line "
                "is named on stderr")
    p.add_argument("file", metavar="FILE.csv",
                   help="header row: username,email,display_name,roles[,hpcsa_number]; roles separated by ; or |")
    p.add_argument("--dry-run", action="store_true", help="check the file and report, without writing anything")
    p = command("unlock", cmd_unlock, "lift a user's sign-in lockout (after too many wrong passwords)")
    p.add_argument("name")
    p = command("totp-reset", cmd_totp_reset, "forget a user's one-time-code secret and recovery codes")
    p.add_argument("name")
    command("audit-verify", cmd_audit_verify, "prove the audit chain; non-zero and the bad row if broken")
    command("db-upgrade", cmd_db_upgrade, "apply store migrations")
    command("contacts-reencrypt", cmd_contacts_reencrypt, "re-encrypt contact details and TOTP secrets with "
            "ContactKeyFile (after a key rotation; older keys in ContactPreviousKeyFiles)")
    command("ensure-admin", cmd_ensure_admin, "create the first admin with a one-time password if none exists")
    p = command("check-config", cmd_check_config, "check an Orthanc configuration file before starting Orthanc "
                "with it; each problem names its key (exit 1)")
    p.add_argument("file", metavar="FILE", help="the configuration file (or folder) to check")
    return top


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; exactly one configuration, named before or after the command."""
    top = parser()
    args = top.parse_args(argv)
    if args.config and args.config_before and args.config != args.config_before:
        top.error(f"--config is given twice ({args.config_before} and {args.config}); give it once")
    args.config = args.config or args.config_before
    if not args.config and args.command not in WITHOUT_STORE:
        top.error("--config is required: the Orthanc configuration file (or folder), before or after the command")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        return args.func(args)
    except GateError as exc:
        print(f"gatectl: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"gatectl: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

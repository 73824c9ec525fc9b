"""Reading a CSV file of users to import: every row checked, every problem reported with its line.

Pure: the caller says which usernames exist already; nothing here touches the store. The file
needs a header row (line 1) naming the columns username, email, display_name (or "display name")
and roles (several separated by ";" or "|"), and may name hpcsa_number. Lines are counted as in
the file, so a quoted cell that spans lines, and blank lines, keep the numbers right.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from plugin.errors import BadRequest
from plugin.services.accounts import check_roles, check_username

REQUIRED_COLUMNS = ("username", "email", "display_name", "roles")
OPTIONAL_COLUMNS = ("hpcsa_number",)
COLUMN_ALIASES = {"displayname": "display_name", "e_mail": "email", "role": "roles", "hpcsa": "hpcsa_number"}
ROLE_SEPARATOR = re.compile(r"[;|]")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# HPCSA registration numbers: a register prefix (MP, DP, PS, ...) and 6-7 digits, e.g. MP0123456.
HPCSA_NUMBER = re.compile(r"[A-Z]{2,3}[0-9]{6,7}")
MAX_FIELD_LENGTH = 256
MAX_ROWS = 20000
PROGRESS_EVERY = 50

# (phase, rows done, rows in all): called every PROGRESS_EVERY rows, and once at the end.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ImportRow:
    line: int  # where the row starts in the file (the header is line 1)
    username: str
    email: str
    display_name: str
    roles: tuple[str, ...]
    # Checked and carried in the report only: there is no doctors table yet to keep it in.
    hpcsa_number: str = ""


@dataclass(frozen=True)
class RowProblem:
    line: int
    errors: tuple[str, ...]


@dataclass(frozen=True)
class ImportReport:
    rows: list[ImportRow]
    problems: list[RowProblem]


class BadCsv(BadRequest):
    """The file cannot be imported as it is; `problems` says where and why. Nothing was written."""

    code = "bad_csv"

    def __init__(self, problems: list[RowProblem]) -> None:
        lines = len(problems)
        super().__init__(f"{lines} line{'s' if lines != 1 else ''} of the file "
                         f"{'have' if lines != 1 else 'has'} errors; nothing was imported "
                         "(fix them and send the whole file again)")
        self.problems = problems

    def rows(self) -> list[dict]:
        return [{"line": p.line, "errors": list(p.errors)} for p in self.problems]


def decode_csv(body: bytes) -> str:
    """The file's text: UTF-8, with or without the byte-order mark spreadsheets put first."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest("The file is not UTF-8 text; save it from the spreadsheet as 'CSV UTF-8'") from exc


def check_email(email: str) -> str:
    """Empty (no address on file) or one that looks like name@domain.tld."""
    if email and (len(email) > MAX_FIELD_LENGTH or not EMAIL.fullmatch(email)):
        raise BadRequest(f"{email[:80]!r} is not an e-mail address")
    return email


def check_display_name(name: str) -> str:
    if len(name) > MAX_FIELD_LENGTH or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise BadRequest(f"Display names are at most {MAX_FIELD_LENGTH} characters, without control characters")
    return name


def check_hpcsa_number(number: str) -> str:
    if number and not HPCSA_NUMBER.fullmatch(number):
        raise BadRequest(f"{number[:40]!r} is not an HPCSA number (2-3 capital letters and 6-7 digits, "
                         "e.g. MP0123456)")
    return number


def split_roles(cell: str) -> list[str]:
    return [role.strip() for role in ROLE_SEPARATOR.split(cell) if role.strip()]


def read_users_csv(text: str, existing: Collection[str] = frozenset(),
                   progress: Progress | None = None) -> ImportReport:
    """Check every row of the file; `existing` are the usernames taken already."""
    lines, unreadable = _rows_with_lines(text)
    if not lines and unreadable is None:
        return ImportReport([], [RowProblem(1, ("The file is empty; the first line must name the columns "
                                                f"{', '.join(REQUIRED_COLUMNS)}",))])
    if not lines:
        return ImportReport([], [unreadable])
    header_line, header = lines[0]
    columns, header_errors = _columns(header)
    if header_errors:
        return ImportReport([], [RowProblem(header_line, tuple(header_errors))])
    body = lines[1:]
    if len(body) > MAX_ROWS:
        return ImportReport([], [RowProblem(body[MAX_ROWS][0], (f"More than {MAX_ROWS} rows; split the file",))])
    rows, problems = [], []
    first_line: dict[str, int] = {}
    for done, (line, cells) in enumerate(body, start=1):
        row, errors = _check_row(line, cells, columns, first_line, existing)
        if errors:
            problems.append(RowProblem(line, tuple(errors)))
        else:
            rows.append(row)
        if progress is not None and (done % PROGRESS_EVERY == 0 or done == len(body)):
            progress("checking", done, len(body))
    return ImportReport(rows, problems + ([unreadable] if unreadable else []))


def _rows_with_lines(text: str) -> tuple[list[tuple[int, list[str]]], RowProblem | None]:
    """The non-blank rows with the line each starts on, up to where the text stops being CSV
    (a quote left open, say), and the problem found there."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    ended = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return rows, None
        except csv.Error as exc:
            return rows, RowProblem(ended + 1, (f"The CSV cannot be read from here on ({exc})",))
        start, ended = ended + 1, reader.line_num
        if any(cell.strip() for cell in cells):
            rows.append((start, [cell.strip() for cell in cells]))


def _column_name(cell: str) -> str:
    """"Display Name", "display-name" and "display_name" all name the column display_name."""
    name = "_".join(cell.lower().replace("_", " ").replace("-", " ").split())
    return COLUMN_ALIASES.get(name, name)


def _columns(header: list[str]) -> tuple[dict[str, int], list[str]]:
    names = [_column_name(cell) for cell in header]
    errors = [f"Unknown column {cell!r}; the columns are {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
              for cell, name in zip(header, names, strict=True) if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    errors += [f"Column {name!r} appears twice" for name in sorted({n for n in names if names.count(n) > 1})]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        errors.append(f"Missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                      "(the first line must name the columns)")
    return {name: index for index, name in enumerate(names)}, errors


def _check_row(line: int, cells: list[str], columns: dict[str, int], first_line: dict[str, int],
               existing: Collection[str]) -> tuple[ImportRow | None, list[str]]:
    if len(cells) != len(columns):
        return None, [f"Expected {len(columns)} cells, found {len(cells)}"]
    cell = {name: cells[index] for name, index in columns.items()}
    username, hpcsa_number = cell["username"], cell.get("hpcsa_number", "")
    errors = [message for message in (
        _problem(check_username, username),
        _problem(check_email, cell["email"]),
        _problem(check_display_name, cell["display_name"]),
        _problem(check_roles, split_roles(cell["roles"])),
        _problem(check_hpcsa_number, hpcsa_number)) if message]
    if username in first_line:
        errors.append(f"Username {username!r} is on line {first_line[username]} already")
    elif username in existing:
        errors.append(f"User {username!r} exists already")
    first_line.setdefault(username, line)
    if errors:
        return None, errors
    roles = tuple(check_roles(split_roles(cell["roles"])))
    return ImportRow(line, username, cell["email"], cell["display_name"], roles, hpcsa_number), []


def _problem(check: Callable[[Any], object], value: Any) -> str | None:
    try:
        check(value)
    except BadRequest as exc:
        return exc.message
    return None

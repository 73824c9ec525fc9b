"""services/user_import.py: every bad row named by its line, nothing half-imported; and the import
use case (services/users.py) against a real store: all or nothing."""

from __future__ import annotations

import pytest

from plugin.errors import BadRequest
from plugin.services import user_import, users
from plugin.services.user_import import BadCsv, decode_csv, read_users_csv
from plugin.store import accounts as account_rows

HEADER = "username,email,display_name,roles,hpcsa_number"
BAD_LINES = (17, 503, 998)  # lines in the file; the header is line 1


def report(text: str, existing=()):
    return read_users_csv(text, existing)


def problem_lines(text: str, existing=()) -> dict[int, tuple[str, ...]]:
    return {p.line: p.errors for p in report(text, existing).problems}


def thousand_rows(bad_lines=BAD_LINES) -> str:
    """A 1,000-row file (lines 2-1001) whose rows at `bad_lines` each have one different fault."""
    good = "{n},{n}@clinic.example,Dr {n},radiologist;billing,MP{line:07d}"
    faults = iter(["{n},{n}@clinic.example,Dr {n},superuser,",  # an unknown role
                   "bad name {n},{n}@clinic.example,Dr {n},radiologist,",  # a space in the username
                   "{n},not-an-address,Dr {n},radiologist,"])  # no e-mail address
    lines = [HEADER]
    for line in range(2, 1002):
        template = next(faults) if line in bad_lines else good
        lines.append(template.format(n=f"user{line:04d}", line=line))
    return "\r\n".join(lines) + "\r\n"


# -- the header ----------------------------------------------------------------------------------


def test_a_good_file_gives_every_row_with_its_line():
    text = f"{HEADER}\nnkosi,nkosi@clinic.example,Dr Nkosi,radiologist;billing,MP0123456\nmoyo,,,admin|radiographer,\n"
    result = report(text)
    assert result.problems == []
    assert [(r.line, r.username, r.roles, r.hpcsa_number) for r in result.rows] == [
        (2, "nkosi", ("billing", "radiologist"), "MP0123456"), (3, "moyo", ("admin", "radiographer"), "")]
    assert result.rows[0].display_name == "Dr Nkosi" and result.rows[0].email == "nkosi@clinic.example"


@pytest.mark.parametrize("header", ["Username,Email,Display Name,Roles", "username, e-mail , display-name,role",
                                    "USERNAME,EMAIL,DISPLAY_NAME,ROLES", "roles,display name,email,username"])
def test_header_names_are_read_loosely_and_in_any_order(header):
    cells = {"username": "nkosi", "email": "n@clinic.example", "display_name": "Dr N", "roles": "radiologist"}
    names = [user_import._column_name(cell) for cell in header.split(",")]
    text = f"{header}\n{','.join(cells[name] for name in names)}\n"
    assert [r.username for r in report(text).rows] == ["nkosi"]


def test_the_hpcsa_number_column_may_be_named_loosely_or_left_out():
    assert report("username,email,display name,roles,HPCSA Number\nnkosi,,,radiologist,DP1234567\n").rows[0] \
        .hpcsa_number == "DP1234567"
    assert report("username,email,display name,roles\nnkosi,,,radiologist\n").rows[0].hpcsa_number == ""


@pytest.mark.parametrize(("text", "message"), [
    ("", "The file is empty"),
    ("\n\n", "The file is empty"),
    ("username,email,roles\nnkosi,,radiologist\n", "Missing column display_name"),
    ("nkosi,n@clinic.example,Dr N,radiologist\n", "Missing columns username, email, display_name, roles"),
    ("username,email,display_name,roles,password\n", "Unknown column 'password'"),
    ("username,email,display_name,roles,email\n", "Column 'email' appears twice"),
])
def test_a_bad_header_is_reported_on_line_1_and_nothing_is_read(text, message):
    result = report(text)
    assert result.rows == [] and [p.line for p in result.problems] == [1]
    assert any(message in error for error in result.problems[0].errors)


# -- rows ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("row", "message"), [
    ("has space,,,radiologist,", "Usernames are 1-128 characters"),
    ("-lead,,,radiologist,", "Usernames are 1-128 characters"),
    (",,,radiologist,", "Usernames are 1-128 characters"),
    ("nkosi,,,superuser,", "Unknown role 'superuser'"),
    ("nkosi,,,,", "at least one role"),
    ("nkosi,,, ; | ,", "at least one role"),
    ("nkosi,nkosi-at-clinic,,radiologist,", "'nkosi-at-clinic' is not an e-mail address"),
    ("nkosi,a@b,,radiologist,", "is not an e-mail address"),
    ("nkosi,,,radiologist,mp0123456", "is not an HPCSA number"),
    ("nkosi,,,radiologist,MP012345678", "is not an HPCSA number"),
    ("nkosi,,,radiologist,M0123456", "is not an HPCSA number"),
    ("nkosi,,,radiologist", "Expected 5 cells, found 4"),
    ("nkosi,,,radiologist,,extra", "Expected 5 cells, found 6"),
    ("nkosi,,\"Dr\nNkosi\",radiologist,", "without control characters"),
    ("nkosi,,\"" + "x" * 257 + "\",radiologist,", "at most 256 characters"),
])
def test_each_fault_of_a_row_is_named(row, message):
    lines = problem_lines(f"{HEADER}\n{row}\n")
    assert list(lines) == [2]
    assert any(message in error for error in lines[2]), lines


@pytest.mark.parametrize("number", ["MP0123456", "DP123456", "PSB1234567"])
def test_good_hpcsa_numbers_pass(number):
    assert report(f"{HEADER}\nnkosi,,,radiologist,{number}\n").rows[0].hpcsa_number == number


def test_every_fault_of_one_row_is_listed():
    [(line, errors)] = problem_lines(f"{HEADER}\nbad name,nope,,superuser,x1\n").items()
    assert line == 2 and len(errors) == 4


def test_a_username_twice_names_the_first_line():
    lines = problem_lines(f"{HEADER}\nnkosi,,,radiologist,\nmoyo,,,billing,\nnkosi,,,billing,\n")
    assert lines == {4: ("Username 'nkosi' is on line 2 already",)}


def test_a_user_that_exists_already_is_an_error():
    assert problem_lines(f"{HEADER}\nnkosi,,,radiologist,\n", existing={"nkosi"}) == {
        2: ("User 'nkosi' exists already",)}


def test_line_numbers_count_blank_lines_and_cells_that_span_lines():
    text = (f"{HEADER}\r\n\r\nnkosi,,\"Dr Nkosi,\r\nradiology\",radiologist,\r\n\r\n"
            "moyo,,,superuser,\r\n   ,  ,\r\nbad name,,,billing,\r\n")
    assert sorted(problem_lines(text)) == [3, 6, 8]


def test_an_unreadable_tail_is_reported_after_the_rows_read_before_it():
    lines = problem_lines(f"{HEADER}\nbad name,,,radiologist,\nnkosi,,\"Dr Nkosi,radiologist,\n")
    assert sorted(lines) == [2, 3] and "cannot be read" in lines[3][0]


def test_cells_are_trimmed():
    row = report(f"{HEADER}\n  nkosi , n@clinic.example ,  Dr N ,  radiologist ; billing , MP0123456 \n").rows[0]
    assert (row.username, row.email, row.display_name, row.roles) == (
        "nkosi", "n@clinic.example", "Dr N", ("billing", "radiologist"))


def test_too_many_rows_are_refused(monkeypatch):
    monkeypatch.setattr(user_import, "MAX_ROWS", 3)
    text = HEADER + "\n" + "".join(f"u{i},,,radiologist,\n" for i in range(4))
    assert list(problem_lines(text)) == [5]


def test_the_1000_row_file_names_exactly_its_3_bad_lines():
    result = report(thousand_rows())
    assert [p.line for p in result.problems] == list(BAD_LINES)
    assert len(result.rows) == 997


def test_progress_is_told_every_50_rows_and_at_the_end():
    calls = []
    read_users_csv(thousand_rows(()) + "extra1,,,radiologist,\n", progress=lambda *args: calls.append(args))
    assert calls[0] == ("checking", 50, 1001) and calls[-1] == ("checking", 1001, 1001) and len(calls) == 21


def test_decode_takes_utf8_with_or_without_a_byte_order_mark():
    assert decode_csv("\ufeffusername".encode()) == "username"
    assert decode_csv("Zoë".encode()) == "Zoë"
    with pytest.raises(BadRequest, match="not UTF-8"):
        decode_csv("Zoë".encode("latin-1"))


def test_the_bad_csv_error_lists_its_rows():
    error = BadCsv([user_import.RowProblem(3, ("a", "b")), user_import.RowProblem(9, ("c",))])
    assert error.status == 400 and error.code == "bad_csv" and "2 lines" in error.message
    assert error.rows() == [{"line": 3, "errors": ["a", "b"]}, {"line": 9, "errors": ["c"]}]


# -- the import, against a real store --------------------------------------------------------------


@pytest.fixture
def events() -> list:
    return []


def sink(events):
    return lambda event: events.append(event) or True


def stored_names(store) -> set[str]:
    with store.read() as db:
        return account_rows.usernames(db)


def test_a_file_with_3_bad_rows_writes_nothing_and_names_exactly_those_lines(store, clock, events):
    with pytest.raises(BadCsv) as refused:
        users.import_users(store, sink(events), users.GATECTL, clock(), thousand_rows())
    assert [p.line for p in refused.value.problems] == list(BAD_LINES)
    assert stored_names(store) == set()
    assert [(e.action, e.outcome) for e in events] == [("users.import", "failure")]


def test_a_clean_file_imports_every_row_in_one_go_and_is_audited_once(store, clock, events):
    progress = []
    count = users.import_users(store, sink(events), users.GATECTL, clock(), thousand_rows(()),
                               progress=lambda *args: progress.append(args))
    assert count == 1000 and len(stored_names(store)) == 1000
    with store.read() as db:
        row = account_rows.user_by_name(db, "user0002")
    assert (row.roles, row.email, row.source, row.password_hash, row.disabled) == (
        "billing,radiologist", "user0002@clinic.example", "local", None, False)
    [event] = events
    assert (event.action, event.outcome, event.reason) == ("users.import", "success", "imported 1000 users")
    assert ("importing", 1000, 1000) in progress


def test_a_dry_run_checks_and_writes_nothing(store, clock, events):
    assert users.import_users(store, sink(events), users.GATECTL, clock(), thousand_rows(()), dry_run=True) == 1000
    assert stored_names(store) == set() and events == []
    with pytest.raises(BadCsv):
        users.import_users(store, sink(events), users.GATECTL, clock(), thousand_rows(), dry_run=True)
    assert events == []


def test_existing_users_are_errors_and_stop_the_whole_import(store, clock, events):
    users.import_users(store, sink(events), users.GATECTL, clock(), f"{HEADER}\nnkosi,,,radiologist,\n")
    with pytest.raises(BadCsv) as refused:
        users.import_users(store, sink(events), users.GATECTL, clock(),
                           f"{HEADER}\nmoyo,,,billing,\nnkosi,,,radiologist,\n")
    assert refused.value.rows() == [{"line": 3, "errors": ["User 'nkosi' exists already"]}]
    assert stored_names(store) == {"nkosi"}

"""policies/passwords.py: the password rules, as a table of passwords and what is said of them."""

from __future__ import annotations

import pytest

from plugin.policies import passwords
from plugin.policies.passwords import password_problem
from plugin.services import accounts

SHORT, USERNAME, REPEATED, RUN, COMMON, COMMON_ADDED = (
    "at least 12 characters", "contains your username", "repeats a character or a short pattern",
    "runs along the alphabet, the digits or the keyboard", "too common", "a common one with a few characters added")


@pytest.mark.parametrize(("password", "username", "said"), [
    ("", "", SHORT),
    ("correct-hor", "", SHORT),  # 11
    ("aaaaaaaaaaaa", "", REPEATED),
    ("AAAAAAAAAAAAAAAAAAAAAAAA", "", REPEATED),
    ("abababababab", "", REPEATED),
    ("abcabcabcabcab", "", REPEATED),  # the last time cut short
    ("hellohellohello", "", REPEATED),
    ("monkeymonkey1", "", REPEATED),  # a repetition with a digit added
    ("wordword1234!", "", REPEATED),
    ("zmqzqmzmqzmq", "", REPEATED),  # only three different characters
    ("abcdefghijkl", "", RUN),
    ("ZYXWVUTSRQPO", "", RUN),
    ("123456789012", "", RUN),  # 9 then 0 goes on
    ("987654321098", "", RUN),
    ("qwertyuiopas", "", RUN),  # one keyboard row into the next
    ("poiuytrewqlkjh", "", RUN),
    ("asdfghjkl;'#", "", RUN),
    ("1qaz2wsx3edc", "", RUN),  # keyboard columns
    ("zaq1xsw2cde3", "", RUN),
    ("!@#$%^&*()_+", "", RUN),  # the shifted digits row
    ("qwerty123456", "", RUN),
    ("abcd1234efgh5678", "", RUN),
    ("my name is drnkosi", "drnkosi", USERNAME),
    ("DrNkosi's long password", "drnkosi", USERNAME),  # case ignored
    ("isoknrd backwards too", "drnkosi", USERNAME),
    ("thandi loves her scans", "thandi@clinic.example", USERNAME),  # the part before the @
    ("Password1234", "", COMMON),  # in the list as it is, case ignored
    ("iloveyou1234", "", COMMON_ADDED),
    ("password1234!", "", COMMON_ADDED),
    ("Sunshine 2024!", "", COMMON_ADDED),
    ("2024dragon!!!", "", COMMON_ADDED),  # added before and after
    ("trustno1234567", "", COMMON_ADDED),  # trustno1 with digits after its own
    ("P@ssw0rd2024", "", COMMON_ADDED),  # look-alike characters inside
    ("he11o kitty 99", "", None),  # "hello kitty" with look-alikes is no single common password
    ("correct-horse-battery", "", None),
    ("correct horse battery staple", "", None),
    ("a brand new passphrase", "drnkosi", None),
    ("admin password 123", "root1", None),  # the tests' own
    ("ed", "ed", "at least 12"),
    ("ed likes long walks", "ed", None),  # a username under 3 characters is not looked for
    ("löwenzahn über alles", "", None),
    ("Tr0ub4dor&3 horse", "", None),
    ("hJ3k9!xQ2mLp", "", None),  # random characters
    ("abab93847261", "", None),  # a short repetition, then digits: not mostly a repetition
])
def test_what_is_said_of_a_password(password, username, said):
    problem = password_problem(password, username)
    if said is None:
        assert problem is None
    else:
        assert problem is not None and said in problem


def test_every_sentence_starts_with_a_capital_and_ends_with_a_full_stop():
    for password in ("short", "aaaaaaaaaaaa", "abcdefghijkl", "Password1234", "password1234!", "drnkosi drnkosi 1"):
        problem = password_problem(password, "drnkosi")
        assert problem is not None and problem[0].isupper() and problem.endswith(".")


def test_the_shipped_list_is_read_once_and_names_where_it_comes_from():
    assert len(passwords.COMMON_PASSWORDS) == 30000
    assert {"password", "123456", "qwerty", "iloveyou"} <= passwords.COMMON_PASSWORDS
    header = passwords.COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()[:12]
    assert any("zxcvbn" in line for line in header) and any("MIT License" in line for line in header)


def test_the_page_lists_the_rules_and_the_length_is_declared_once():
    assert accounts.MIN_PASSWORD_LENGTH == passwords.MIN_LENGTH == 12
    assert len(passwords.RULES) == 5 and all(rule[0].isupper() for rule in passwords.RULES)


def test_a_long_password_is_checked_quickly():
    assert password_problem("1" * 5000 + "password" + "2" * 5000) is not None
    assert password_problem("correct horse battery staple " * 200) is None

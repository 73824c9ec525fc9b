"""policies/dashboard.py: who lands on the doctor dashboard, what a visit is, which studies are new,
and how the search box is read."""

from __future__ import annotations

import pytest

from plugin.policies.dashboard import (
    DASHBOARD_PATH,
    MAX_TEXT,
    VISIT_GAP_SECONDS,
    StudySearch,
    Visit,
    became_theirs_at,
    is_new,
    iso_day,
    landing_page,
    next_visit,
    orthanc_time,
    read_search,
)
from plugin.policies.types import ANONYMOUS, Principal

HOME = "/app/explorer.html"
T = 1_700_000_000.0


def who(*roles: str) -> Principal:
    return Principal("someone", frozenset(roles), "session")


# -- landing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("principal", "tied", "lands"), [
    (who("referring_doctor"), False, DASHBOARD_PATH),
    (who("radiologist"), False, DASHBOARD_PATH),
    (who("radiologist", "billing"), False, DASHBOARD_PATH),
    (who("billing"), True, DASHBOARD_PATH),  # tied to a doctor record
    (who("billing"), False, HOME),
    (who("transcriptionist"), False, HOME),
    (who("admin"), False, HOME),
    (who("admin", "radiologist"), True, HOME),  # an admin keeps HomePage
    (ANONYMOUS, True, HOME),
])
def test_doctors_who_are_not_admins_land_on_the_dashboard(principal, tied, lands):
    assert landing_page(principal, tied, HOME) == lands


# -- visits -----------------------------------------------------------------------------------------


def test_a_first_page_load_starts_the_first_visit():
    assert next_visit(None, None, T) == Visit(T, None)


def test_page_loads_within_the_gap_continue_the_visit():
    visit = next_visit(T, T - 86400, T + VISIT_GAP_SECONDS)
    assert visit == Visit(T + VISIT_GAP_SECONDS, T - 86400)  # the previous visit stays: marks stay


def test_a_page_load_after_the_gap_starts_a_new_visit():
    assert next_visit(T, T - 86400, T + VISIT_GAP_SECONDS + 1) == Visit(T + VISIT_GAP_SECONDS + 1, T)


def test_a_visit_is_measured_from_the_last_page_load_not_its_first():
    visit = Visit(T, None)
    for minute in range(1, 120, 20):  # a load every 20 minutes for two hours: one long visit
        visit = next_visit(visit.visit_at, visit.previous_visit_at, T + minute * 60)
    assert visit.previous_visit_at is None


def test_the_second_visit_after_the_first():
    first = next_visit(None, None, T)
    again = next_visit(first.visit_at, first.previous_visit_at, T + 3600)
    assert again == Visit(T + 3600, T)


# -- what is new --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("grant_times", "last_update", "expected"), [
    ([T, T - 50], T - 100, T - 50),  # an old study granted lately: the earliest live grant
    ([T - 100], T, T),  # a granted patient's new study: its arrival
    ([], T, T),
    ([T], None, T),
    ([], None, None),
])
def test_a_study_became_theirs_at_the_later_of_grant_and_arrival(grant_times, last_update, expected):
    assert became_theirs_at(grant_times, last_update) == expected


@pytest.mark.parametrize(("became", "previous", "new"), [
    (T + 1, T, True),
    (T, T, False),
    (T - 1, T, False),
    (None, T, False),
    (T - 1, None, True),  # before a first visit everything is new
    (None, None, True),
])
def test_new_means_after_the_previous_visit(became, previous, new):
    assert is_new(became, previous) is new


def test_orthanc_times_are_utc():
    assert orthanc_time("20231114T221320") == T
    assert orthanc_time("") is None and orthanc_time("2023-11-14") is None


# -- the search box -----------------------------------------------------------------------------------


def test_an_empty_search_is_page_one_of_everything():
    search = read_search({})
    assert search == StudySearch() and not search.is_filtered and search.problem is None


def test_words_become_one_wildcard_match_as_typed():
    search = read_search({"q": "  nkosi   th "})
    assert search.text == "nkosi th" and search.pattern == "*nkosi*th*"


def test_values_are_percent_decoded_as_a_form_sends_them():
    search = read_search({"q": "Nkosi+Th%C3%A9", "from": "2024-01-02", "to": "2024-12-31", "modality": "ct",
                          "page": "2"})
    assert (search.text, search.date_from, search.date_to, search.modality, search.page) == \
        ("Nkosi Thé", "20240102", "20241231", "CT", 2)
    assert search.date_range == "20240102-20241231" and search.is_filtered


@pytest.mark.parametrize(("params", "dates"), [
    ({"from": "20240102"}, "20240102-"),
    ({"to": "2024-01-02"}, "-20240102"),
    ({"from": "2024-01-02", "to": "2024-01-02"}, "20240102"),
])
def test_open_and_single_day_ranges(params, dates):
    assert read_search(params).date_range == dates


@pytest.mark.parametrize(("params", "problem"), [
    ({"q": "x" * (MAX_TEXT + 1)}, "at most 64 characters"),
    ({"q": "nkosi%00"}, "control character"),
    ({"q": "a%0Ab"}, "control character"),
    ({"q": "a\\b"}, "backslash"),
    ({"q": "a%5Cb"}, "backslash"),
    ({"q": "%FF%FE"}, "not valid UTF-8"),
    ({"from": "2024-02-30"}, "'from' date must be a real date"),
    ({"to": "yesterday"}, "'to' date must be a real date"),
    ({"from": "2024-13-01"}, "real date"),
    ({"from": "2024-12-31", "to": "2024-01-01"}, "after the 'to' date"),
    ({"modality": "C T"}, "short code"),
    ({"modality": "CT\\MR"}, "short code"),
    ({"page": "0"}, "whole number"),
    ({"page": "-1"}, "whole number"),
    ({"page": "two"}, "whole number"),
    ({"page": "99999999"}, "whole number"),
])
def test_bad_input_is_named_not_raised(params, problem):
    search = read_search(params)
    assert search.problem and problem in search.problem, search.problem
    assert search.page == 1


def test_a_bad_search_keeps_what_was_typed_for_the_form_bounded():
    search = read_search({"q": "y" * 500, "from": "2024-02-30xxxxxxxx"})
    assert search.problem and len(search.text) == MAX_TEXT and search.date_from == "2024-02-30"


def test_the_query_string_of_another_page_keeps_the_search():
    search = read_search({"q": "nkosi th", "from": "2024-01-02", "modality": "MR"})
    assert search.query_string(3) == "q=nkosi+th&from=2024-01-02&modality=MR&page=3"
    assert read_search(dict(pair.split("=") for pair in search.query_string(3).split("&"))) == \
        StudySearch("nkosi th", "20240102", "", "MR", 3)
    assert read_search({}).query_string(1) == ""


def test_iso_day():
    assert iso_day("20240102") == "2024-01-02" and iso_day("") == "" and iso_day("2024") == "2024"

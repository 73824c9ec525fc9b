"""policies/qido.py: the QIDO keys the gate reads as the DICOMweb plugin does, and nothing else."""

from __future__ import annotations

import pytest
from pydicom.datadict import tag_for_keyword

from plugin.policies.access import decide
from plugin.policies.qido import (
    LOCATING,
    PARAMETERS,
    QIDO_KEYWORDS,
    forwards_searches,
    read_query,
    search_values,
    tag_of,
    trimmed_search,
)
from plugin.policies.routes import classify
from plugin.policies.types import ANONYMOUS, Principal


@pytest.mark.parametrize("keyword", sorted(QIDO_KEYWORDS))
def test_each_keyword_names_the_tag_the_dicom_dictionary_gives_it(keyword):
    assert tag_for_keyword(keyword) == QIDO_KEYWORDS[keyword]


def test_the_locating_tags_are_in_the_table():
    assert {QIDO_KEYWORDS[name] for name in LOCATING.values()} == set(LOCATING)


@pytest.mark.parametrize(("key", "tag"), [
    ("00100020", 0x00100020), ("0020000d", 0x0020000D), ("0020000D", 0x0020000D), ("0010,0020", 0x00100020),
    ("0010-0020", 0x00100020), ("7FE0,0010", 0x7FE00010), ("PatientID", 0x00100020),
])
def test_tag_of_the_spellings_read_exactly(key, tag):
    assert tag_of(key) == tag


@pytest.mark.parametrize("key", ["patientid", "10,20", "0x0010,0x0020", "0010.0020", "00100020 ", "0010,00200",
                                 "001000200", "(0010,0020)", "0010_0020", "", "limit"])
def test_tag_of_anything_else_is_none(key):
    assert tag_of(key) is None


def test_parameters_and_empty_keys_filter_nothing():
    found = read_query({"": "", "limit": "x", "offset": "3", "fuzzymatching": "true", "includefield": "all"})
    assert found.problem is None and found.locating == ()
    assert PARAMETERS == {"limit", "offset", "fuzzymatching", "includefield"}


def test_an_empty_locating_value_locates_nothing_and_is_no_problem():
    found = read_query({"PatientID": ""})
    assert found.problem is None and search_values(dict(found.locating)["PatientID"]) == []


def test_search_values_split_uid_lists():
    assert search_values("1.2,3.4") == ["1.2", "3.4"]


@pytest.mark.parametrize(("version", "forwards"), [
    ("1.7", False), ("1.8", False), ("1.9", True), ("1.20", True), ("2.0", True), ("mainline", True),
    ("", False), ("1.x", False), ("1", False), ("1.9.1", True),
])
def test_only_a_dicomweb_plugin_that_searches_through_our_find_gets_its_searches_through(version, forwards):
    assert forwards_searches(version) is forwards


def test_a_trimmed_search_is_let_through_whatever_its_keys():
    route = classify("GET", "/dicom-web/studies", {"0x10,0x20": "*"}, {})
    assert route.query_problem
    trimmed = trimmed_search(route)
    assert trimmed.trimmed and trimmed.query_problem is None
    assert decide(Principal(username="dr", roles=frozenset({"doctor"}), via="basic"), trimmed).allowed
    assert not decide(ANONYMOUS, trimmed).allowed

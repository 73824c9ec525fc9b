"""policies/qido.py: the QIDO keys the gate reads as the DICOMweb plugin does, and nothing else."""

from __future__ import annotations

import pytest
from pydicom.datadict import tag_for_keyword

from plugin.policies.qido import LOCATING, PARAMETERS, QIDO_KEYWORDS, read_query, search_values, tag_of


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

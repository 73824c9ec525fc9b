"""The DICOMweb plugin 1.7's search rules (policies/dicomweb_search.py); the answers themselves are
compared byte for byte with the real plugin in tests/integration/test_dicomweb_admin_unchanged.py."""

from __future__ import annotations

import pytest

from plugin.policies import dicomweb_search as qido
from plugin.policies.dicomweb_search import INSTANCE, SERIES, STUDY, DicomWebRefused

KEYWORDS = {"PatientID": 0x00100020, "PatientName": 0x00100010, "StudyDescription": 0x00081030,
            "StudyInstanceUID": 0x0020000D}


def tag_of(key: str) -> int | None:
    return qido.parse_hex_tag(key) or qido.dcmtk_tag_pair(key) or KEYWORDS.get(key)


@pytest.mark.parametrize("text, number", [("0", 0), ("101", 101), ("+5", 5), ("-1", 0xFFFFFFFF), ("-0", 0),
                                          ("4294967295", 0xFFFFFFFF)])
def test_limit_and_offset_read_as_boost_reads_an_unsigned_int(text, number):
    assert qido.unsigned(text) == number


@pytest.mark.parametrize("text", ["", "abc", " 5", "5 ", "1e3", "4294967296", "--1", "0x10"])
def test_anything_else_is_the_plugins_400(text):
    with pytest.raises(DicomWebRefused) as refused:
        qido.unsigned(text)
    assert refused.value.status == 400


@pytest.mark.parametrize("key, tag", [("00100020", 0x00100020), ("0010,0020", 0x00100020), ("0010-0020", 0x00100020),
                                      ("10,20", 0x00100020), ("0x10,0x20", 0x00100020), ("10010,20", 0x00100020),
                                      (" 10, 20", 0x00100020), ("+10,+20", 0x00100020), ("10,20zz", 0x00100020),
                                      ("10,20ab", 0x0010_20AB), ("-1,0", 0xFFFF_0000)])
def test_keys_name_tags_as_orthanc_and_dcmtk_parse_them(key, tag):
    assert tag_of(key) == tag


@pytest.mark.parametrize("key", ["PatientId", "patientid", "10 ,20", "10", ",20", "0x,20", "zz,20", ""])
def test_other_spellings_name_nothing(key):
    assert tag_of(key) is None


def test_a_search_reads_paging_fields_and_filters_as_the_plugin():
    search = qido.read_search(STUDY, {"limit": "5", "offset": "2", "fuzzymatching": "true",
                                      "includefield": "StudyDescription,junk,0008,0060", "PatientName": "D*",
                                      "0010,0020": "a,b%2Cc\\d", "junk": "x"}, (), tag_of)
    assert (search.limit, search.offset) == (5, 2)
    # "0008,0060" is split at its comma: neither half names a tag.
    assert search.include_fields == [0x00081030]
    assert search.filters == {0x00100010: "D*", 0x00100020: "a\\b\\cd"}
    assert qido.find_request(search, None) == {
        "Level": "Study", "Expand": False, "Query": {"0010,0010": "D*", "0010,0020": "a\\b\\cd"},
        "Limit": 5, "Since": 2}
    assert qido.find_request(search, True)["CaseSensitive"] is True


def test_includefield_all_adds_nothing_and_fuzzymatching_must_be_true_or_false():
    assert qido.read_search(STUDY, {"includefield": "all"}, (), tag_of).include_fields == []
    with pytest.raises(DicomWebRefused):
        qido.read_search(STUDY, {"fuzzymatching": "yes"}, (), tag_of)


def test_the_path_filters_last_and_does_not_count_as_the_querys_own():
    search = qido.read_search(INSTANCE, {"StudyInstanceUID": "9.9"}, ("1.2", "1.3"), tag_of)
    assert search.filters[0x0020000D] == "1.2" and search.filters[0x0020000E] == "1.3"
    assert search.filtered_study and not search.filtered_series
    assert not qido.read_search(SERIES, {}, ("1.2",), tag_of).filtered_study


def test_a_studys_derived_attributes_and_the_instance_read_for_the_rest():
    series = [{"MainDicomTags": {"Modality": "MR"}, "Instances": ["i1", "i2"]},
              {"MainDicomTags": {"Modality": "CT"}, "Instances": ["i3"]},
              {"MainDicomTags": {"Modality": "CT"}, "Instances": []}]
    derived, some = qido.study_derived(series)
    assert derived == {qido.MODALITIES_IN_STUDY: "CT\\MR", qido.NUMBER_OF_STUDY_RELATED_SERIES: "3",
                       qido.NUMBER_OF_STUDY_RELATED_INSTANCES: "3"}
    assert some == "i3"  # the first instance of the last series that has one
    assert qido.study_derived(None) == ({qido.MODALITIES_IN_STUDY: "", qido.NUMBER_OF_STUDY_RELATED_SERIES: "0",
                                         qido.NUMBER_OF_STUDY_RELATED_INSTANCES: "0"}, "")
    assert qido.series_derived({"Instances": ["a", "b"]}) == ({qido.NUMBER_OF_SERIES_RELATED_INSTANCES: "2"}, "a")


def test_an_answer_holds_the_levels_attributes_the_filters_and_the_retrieve_url():
    source = {0x0020000D: "1.2", 0x0020000E: "1.3", 0x00080018: "1.4", 0x00100010: "Doe^J", 0x00081030: "Head",
              0x00080060: "CT", 0x00180050: "1.5", 0x00200013: "7"}
    search = qido.read_search(INSTANCE, {"00180050": ""}, ("1.2",), tag_of)
    answer = qido.answer_attributes(search, {}, source, "http://h/dicom-web/")
    assert answer[0x00081190] == "http://h/dicom-web/studies/1.2/series/1.3/instances/1.4"
    # Study attributes (PatientName) too: the path's StudyInstanceUID is not the query's own.
    assert {0x00100010, 0x00080060, 0x00180050, 0x00200013} <= set(answer) and 0x00081030 not in answer
    study = qido.read_search(STUDY, {}, (), tag_of)
    answer = qido.answer_attributes(study, {qido.MODALITIES_IN_STUDY: "CT"}, source, "b/")
    assert answer[0x00081190] == "b/studies/1.2" and answer[qido.MODALITIES_IN_STUDY] == "CT"
    assert 0x00080060 not in answer


def test_string_tags_are_the_ones_the_plugin_can_copy():
    tags = {"0010,0010": {"Type": "String", "Value": "Doe"}, "0040,0275": {"Type": "Sequence", "Value": []},
            "7fe0,0010": {"Type": "Binary", "Value": None}, "0008,0020": {"Type": "Null", "Value": None},
            "junk": {"Type": "String", "Value": "x"}}
    assert qido.string_tags(tags) == {0x00100010: "Doe"}


@pytest.mark.parametrize("headers, host, ssl, url", [
    ({"host": "pacs:8042"}, "", False, "http://pacs:8042/dicom-web/"),
    ({}, "", False, "http://localhost:8042/dicom-web/"),
    ({"host": "a", "forwarded": "for=1.2.3.4;host=proxy.example;proto=https, host=other"}, "", False,
     "https://proxy.example/dicom-web/"),
    ({"host": "a", "forwarded": "proto=http"}, "", True, "http://a/dicom-web/"),
    ({"host": "a", "forwarded": "host=b"}, "configured:1", True, "https://configured:1/dicom-web/"),
])
def test_retrieve_urls_start_where_the_plugin_says(headers, host, ssl, url):
    assert qido.base_url(headers, host, ssl, "/dicom-web/") == url


@pytest.mark.parametrize("accept, xml", [(None, False), ("application/dicom+json", False),
                                         ("application/dicom+xml", True), ("TEXT/XML", True),
                                         ("application/xml", True),
                                         ('multipart/related; type="application/dicom+xml"', False)])
def test_only_three_exact_accept_values_ask_for_xml(accept, xml):
    assert qido.wants_xml({} if accept is None else {"accept": accept}) is xml

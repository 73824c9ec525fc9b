"""DICOM JSON and XML as Orthanc's core writes them (services/dicomweb_format.py). The layouts
here were read off the real plugin's answers; tests/integration/test_dicomweb_admin_unchanged.py
compares whole answers with it byte for byte."""

from __future__ import annotations

import io

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

from plugin.services.dicomweb_format import dicom_model, json_answer, native_xml, styled_json


def created(charset: str = "ISO_IR 100", raw: dict[int, bytes] | None = None, **attributes: object) -> bytes:
    """An object as Orthanc's CreateDicom leaves it: explicit VR little endian, a character set."""
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    dataset.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    dataset.SpecificCharacterSet = charset
    for name, value in attributes.items():
        setattr(dataset, name, value)
    for tag, value in (raw or {}).items():  # as written, past pydicom's checks of the value
        dataset[tag] = RawDataElement(Tag(tag), dictionary_VR(tag), len(value), value, 0, False, True)
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_values_take_their_json_types():
    model = dicom_model(created(PatientName="Müller^Jürgen", SeriesNumber=" 12 ", SliceThickness="1.50",
                                PatientWeight="70", ImageType=["ORIGINAL", "PRIMARY"], PatientBirthDate="",
                                Rows=512, ReferringPhysicianName="Dr^=^"))
    assert model["00100010"] == {"Value": [{"Alphabetic": "Müller^Jürgen"}], "vr": "PN"}
    assert model["00200011"]["Value"] == [12] and model["00180050"]["Value"] == [1.5]
    assert model["00101030"]["Value"] == [70]  # a whole DS is written as an integer
    assert model["00080008"]["Value"] == ["ORIGINAL", "PRIMARY"]
    assert model["00100030"] == {"vr": "DA"} and model["00280010"] == {"Value": [512], "vr": "US"}
    assert model["00080090"]["Value"] == [{"Alphabetic": "Dr^", "Ideographic": "^"}]
    assert model["00080005"]["Value"] == ["ISO_IR 100"]


def test_json_is_jsoncpps_styled_layout_with_non_ascii_escaped():
    text = styled_json(dicom_model(created(PatientName="Müller", StudyDescription='a "q" \\ \x7f')))
    assert text.startswith('{\n\t"00080005" : \n\t{\n\t\t"Value" : \n\t\t[\n\t\t\t"ISO_IR 100"\n'
                           '\t\t],\n\t\t"vr" : "CS"\n\t},')
    assert '"Alphabetic" : "M\\u00fcller"' in text
    assert text.endswith("}\n")
    assert json_answer([text, text]) == ("[" + text + "," + text + "]").encode()
    assert json_answer([]) == b"[]"


def test_a_multi_valued_description_splits_at_backslashes_as_the_core_does():
    model = dicom_model(created(StudyDescription="a\\\\b"))
    assert model["00081030"]["Value"] == ["a", None, "b"]


def test_utf8_objects_keep_their_characters():
    model = dicom_model(created("ISO_IR 192", PatientName="Ζ^α=山田"))
    assert model["00100010"]["Value"] == [{"Alphabetic": "Ζ^α", "Ideographic": "山田"}]
    assert '"\\u0396^\\u03b1"' in styled_json(model)


def test_xml_is_the_native_model_with_keywords_and_escapes():
    model = dicom_model(created(PatientName="Doe^John^^Dr", StudyDescription="<&>", PatientBirthDate=""))
    keywords = {0x00080005: "SpecificCharacterSet", 0x00100010: "PatientName", 0x00081030: "StudyDescription"}
    xml = native_xml(model, keywords.get).decode()
    assert xml.startswith('<?xml version="1.0" encoding="utf-8"?>\n<NativeDicomModel xmlns=')
    assert '  <DicomAttribute tag="00081030" vr="LO" keyword="StudyDescription">\n' \
           '    <Value number="1">&lt;&amp;&gt;</Value>\n  </DicomAttribute>\n' in xml
    assert ('    <PersonName number="1">\n      <Alphabetic>\n        <FamilyName>Doe</FamilyName>\n'
            '        <GivenName>John</GivenName>\n        <MiddleName></MiddleName>\n'
            '        <NamePrefix>Dr</NamePrefix>\n      </Alphabetic>\n    </PersonName>\n') in xml
    assert '  <DicomAttribute tag="00100030" vr="DA" />\n' in xml  # no keyword known here, no value
    assert xml.endswith("</NativeDicomModel>\n")


def test_a_text_value_its_vr_cannot_hold_keeps_an_empty_value_list():
    """A private tag read under another creator's dictionary entry (a DS holding text): the core
    drops the value it cannot parse and keeps "Value": []."""
    model = dicom_model(created(raw={0x00180050: b"1.5\\abc ", 0x00101030: b"abc "}))
    assert model["00180050"]["Value"] == [1.5] and model["00101030"] == {"Value": [], "vr": "DS"}
    assert '"Value" : [],' in styled_json(model)

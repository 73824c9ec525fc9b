"""DICOM JSON and XML (PS3.18 F.2, PS3.19) of one DICOM object, written byte for byte as Orthanc's
core writes them for the DICOMweb plugin (DicomWebJsonVisitor, in Ignore mode for binary values).

The object comes from Orthanc's own CreateDicom, as the plugin makes it, so the value
representations and the character set conversion are Orthanc's. This module reads its flat
dataset (a search answer holds string values only: no sequence) and writes what the core would:
JSON through jsoncpp's styled writer (tab indents, sorted members, every object and non-empty
array on lines of its own, non-ASCII as \\u escapes), XML through pugixml (two-space indents).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from pydicom.charset import convert_encodings, decode_bytes

TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
                      "UR", "UT"})
CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
INTEGER_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "UV": "Q", "SV": "q"}
REAL_FORMATS = {"FL": "f", "FD": "d"}
PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
PN_PARTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
SPECIFIC_CHARACTER_SET = 0x00080005
XML_HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/'
            'NativeDICOM" xsi:schemaLocation="http://dicom.nema.org/PS3.19/models/NativeDICOM" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n')


EXPLICIT_LITTLE_ENDIAN = b"1.2.840.10008.1.2.1"
LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})


def dicom_model(dicom: bytes) -> dict[str, Any]:
    """The DICOM JSON model of an object's dataset (no file meta, no group lengths)."""
    flat = _flat_elements(dicom)
    if flat is None:
        raise ValueError("not the flat explicit little endian object CreateDicom makes of a search answer")
    charset = next((raw for tag, _, raw in flat if tag == SPECIFIC_CHARACTER_SET), b"")
    terms = [t.strip(" ") for t in charset.decode("latin-1").split("\\")] if charset else []
    encodings = convert_encodings(terms or None)
    model: dict[str, Any] = {}
    for tag, vr, raw in flat:
        values = _values(tag, vr, raw, encodings)
        model[f"{tag >> 16:04X}{tag & 0xFFFF:04X}"] = {"vr": vr} if values is None else {"Value": values, "vr": vr}
    return model


def _flat_elements(dicom: bytes) -> list[tuple[int, str, bytes]] | None:
    """The dataset's elements when it is what CreateDicom makes of a search answer: explicit VR
    little endian, no sequence, no undefined length; None otherwise."""
    if dicom[128:132] != b"DICM":
        return None
    elements: list[tuple[int, str, bytes]] = []
    syntax, position, size = b"", 132, len(dicom)
    while position + 8 <= size:
        group, element = struct.unpack_from("<HH", dicom, position)
        vr = dicom[position + 4:position + 6].decode("latin-1")
        if vr in LONG_LENGTH_VRS:
            (length,), start = struct.unpack_from("<I", dicom, position + 8), position + 12
        else:
            (length,), start = struct.unpack_from("<H", dicom, position + 6), position + 8
        if vr == "SQ" or length == 0xFFFFFFFF or start + length > size:
            return None
        value = dicom[start:start + length]
        if group == 0x0002:
            if element == 0x0010:
                syntax = value.rstrip(b"\0 ")
        elif element != 0:
            elements.append(((group << 16) | element, vr, value))
        position = start + length
    return elements if syntax == EXPLICIT_LITTLE_ENDIAN and position == size else None


def _values(tag: int, vr: str, raw: bytes, encodings: list[str]) -> list[Any] | None:
    """An attribute's values; None when it has no "Value" at all (empty). A text value none of whose
    parts its VR can hold keeps an empty "Value", as the core leaves it."""
    if not raw:
        return None
    if vr in TEXT_VRS:
        return _text_values(tag, vr, raw, encodings)
    if vr in INTEGER_FORMATS:
        code = INTEGER_FORMATS[vr]
        count = len(raw) // struct.calcsize(code)
        return [_integer(v) for v in struct.unpack(f"<{count}{code}", raw[:count * struct.calcsize(code)])] or None
    if vr in REAL_FORMATS:
        code = REAL_FORMATS[vr]
        count = len(raw) // struct.calcsize(code)
        return [_double(v) for v in struct.unpack(f"<{count}{code}", raw[:count * struct.calcsize(code)])] or None
    if vr == "AT":
        pairs = struct.unpack(f"<{len(raw) // 2}H", raw[:len(raw) // 2 * 2])
        return [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs) - 1, 2)] or None
    return None  # binary values are left out (Ignore mode): the attribute shows its VR only


def _text_values(tag: int, vr: str, raw: bytes, encodings: list[str]) -> list[Any] | None:
    if vr in CHARSET_VRS:
        text = decode_bytes(raw, encodings, {0x5C, 0x3D, 0x5E} if vr == "PN" else {0x5C})
    else:
        text = raw.decode("latin-1")
    text = text.rstrip("\0" if vr == "UI" else " ")
    if vr == "UI":
        text = text.rstrip(" ")
    if not text:
        return None
    tokens = text.split("\\")
    if tag == SPECIFIC_CHARACTER_SET and len(tokens) > 1 and tokens[0] == "":
        tokens = tokens[1:]  # a code extension's empty first term is not a value
    values: list[Any] = []
    for token in tokens:
        if vr == "PN":
            values.append({} if token == "" else dict(zip(PN_GROUPS, token.split("="), strict=False)))
        elif vr in ("IS", "DS"):
            stripped = token.strip(" ")
            if not stripped:
                values.append(None)
                continue
            try:
                values.append(_integer(int(stripped)) if vr == "IS" else _double(float(stripped)))
            except ValueError:
                continue  # the core logs and leaves out a value its VR cannot hold
        else:
            values.append(token if token else None)
    return values


def _integer(value: int) -> int:
    # FormatInteger: negative values as int32, others as uint32 (casts, as in C++).
    if value < 0:
        value &= 0xFFFFFFFF
        return value - (1 << 32) if value >= 1 << 31 else value
    return value & 0xFFFFFFFF


def _double(value: float) -> int | float:
    # FormatDouble: a value within 100 epsilons of a whole number is written as that integer.
    if math.isfinite(value) and abs(value) < 9.2e18:
        rounded = round(value)
        if abs(value - rounded) <= 2.220446049250313e-16 * 100.0:
            return _integer(int(rounded))
    return value


# -- JSON: jsoncpp's styled writer --------------------------------------------------------------

def styled_json(value: Any) -> str:
    """`value` as jsoncpp's toStyledString() writes it, final newline included."""
    out: list[str] = []
    _write(value, out, "", at_line_start=True)
    out.append("\n")
    return "".join(out)


def json_answer(items: list[str]) -> bytes:
    """The plugin's search answer: the styled items between brackets, joined by commas."""
    return ("[" + ",".join(items) + "]").encode("utf-8")


def _write(value: Any, out: list[str], indent: str, at_line_start: bool) -> None:
    if isinstance(value, dict | list) and value:
        if not at_line_start:
            out.append("\n" + indent)
        inner = indent + "\t"
        if isinstance(value, dict):
            out.append("{")
            keys = sorted(value)  # code point order: jsoncpp's byte order of UTF-8
            for position, key in enumerate(keys):
                out.append("\n" + inner + _quoted(key) + " : ")
                _write(value[key], out, inner, at_line_start=False)
                if position < len(keys) - 1:
                    out.append(",")
            out.append("\n" + indent + "}")
        else:
            out.append("[")
            for position, item in enumerate(value):
                out.append("\n" + inner)
                _write(item, out, inner, at_line_start=True)
                if position < len(value) - 1:
                    out.append(",")
            out.append("\n" + indent + "]")
    elif isinstance(value, dict):
        out.append("{}")
    elif isinstance(value, list):
        out.append("[]")
    else:
        out.append(_scalar(value))


def scalar_text(value: Any, real: Callable[[float], str]) -> str:
    """A JSON scalar as Orthanc's writers put it in text; `real` writes a double."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return real(value)
    return str(value)


def float_text(value: float) -> str:
    """jsoncpp's asFloat(), then 9 significant digits (pugixml's and boost's text of a float)."""
    return f"{struct.unpack('<f', struct.pack('<f', value))[0]:.9g}"


def _scalar(value: Any) -> str:
    return _quoted(value) if isinstance(value, str) else scalar_text(value, _double_text)


def _double_text(value: float) -> str:
    if math.isnan(value):
        return "null"
    if math.isinf(value):
        return "1e+9999" if value > 0 else "-1e+9999"
    text = f"{value:.17g}"
    return text if "." in text or "e" in text else text + ".0"


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


_PLAIN = re.compile(r'[ !#-\[\]-\x7f]*')  # printable ASCII but for " and \\: written as it is


def _quoted(text: str) -> str:
    if _PLAIN.fullmatch(text):
        return '"' + text + '"'
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0x20 <= code <= 0x7F:
            out.append(char)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    out.append('"')
    return "".join(out)


# -- XML: pugixml's indented writer --------------------------------------------------------------

def native_xml(model: dict[str, Any], keyword: Callable[[int], str | None]) -> bytes:
    """The PS3.19 native model of a DICOM JSON model, as the core writes it."""
    lines = [XML_HEAD]
    _xml_dataset(model, keyword, lines, "  ")
    lines.append("</NativeDicomModel>\n")
    return "".join(lines).encode("utf-8")


def _xml_dataset(model: dict[str, Any], keyword: Callable[[int], str | None], lines: list[str], indent: str) -> None:
    for tag in sorted(model):
        content = model[tag]
        name = keyword(int(tag, 16))
        head = f'{indent}<DicomAttribute tag="{tag}" vr="{content["vr"]}"'
        if name is not None:
            head += f' keyword="{_attribute(name)}"'
        children: list[str] = []
        for number, value in enumerate(content.get("Value", ()), start=1):
            children.extend(_xml_value(content["vr"], value, number, indent + "  "))
        if children:
            lines.append(head + ">\n")
            lines.extend(children)
            lines.append(f"{indent}</DicomAttribute>\n")
        else:
            lines.append(head + " />\n")


def _xml_value(vr: str, value: Any, number: int, indent: str) -> list[str]:
    if vr == "PN":
        groups = [(g, value[g]) for g in PN_GROUPS if isinstance(value, dict) and isinstance(value.get(g), str)]
        if not groups:
            return []
        lines = [f'{indent}<PersonName number="{number}">\n']
        for group, text in groups:
            # Each component is given a text, empty or not: pugixml writes an empty one open and shut.
            parts = [f"{indent}    <{part}>{xml_text(piece)}</{part}>\n"
                     for part, piece in zip(PN_PARTS, text.split("^"), strict=False)]
            lines.extend([f"{indent}  <{group}>\n", *parts, f"{indent}  </{group}>\n"])
        lines.append(f"{indent}</PersonName>\n")
        return lines
    if isinstance(value, str):
        text = xml_text(value)
    elif isinstance(value, float):
        text = float_text(value)
    elif isinstance(value, int):
        text = str(value)
    else:
        text = ""
    if not text:
        return [f'{indent}<Value number="{number}" />\n']
    return [f'{indent}<Value number="{number}">{text}</Value>\n']


def xml_text(text: str) -> str:
    """Text as pugixml writes it: the markup characters escaped, control characters as references."""
    return _controls(escape(text))


def _attribute(text: str) -> str:
    return _controls(escape(text, {'"': "&quot;"}))


def _controls(text: str) -> str:
    return "".join(f"&#{ord(c)};" if ord(c) < 0x20 and c not in "\t\n\r" else c for c in text)

"""Orthanc's XML form of its JSON answers, for a client whose Accept names application/xml: the
core converts every JSON answer so (RestApi.cpp, Toolbox::JsonToXml), and the answers the Gate
gives in the core's place must too."""

from __future__ import annotations

from typing import Any

from plugin.services.dicomweb_format import float_text, scalar_text, xml_text

XML_TYPE = "application/xml; charset=utf-8"
HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'


def wants_xml(accept: str | None) -> bool:
    """The core's reading of Accept: split at ";", the last of application/xml or application/json
    among the pieces, exactly so spelt, decides."""
    xml = False
    for piece in (accept or "").split(";"):
        if piece == "application/xml":
            xml = True
        elif piece == "application/json":
            xml = False
    return xml


def json_to_xml(value: Any) -> bytes:
    """Toolbox::JsonToXml(value, "root", "item"), written by pugixml with two-space indents."""
    lines = [HEAD]
    _element("root", value, "", lines)
    return "".join(lines).encode("utf-8")


def _element(name: str, value: Any, indent: str, lines: list[str]) -> None:
    if isinstance(value, dict | list):
        children = sorted(value.items()) if isinstance(value, dict) else [("item", v) for v in value]
        if not children:
            lines.append(f"{indent}<{name} />\n")
            return
        lines.append(f"{indent}<{name}>\n")
        for child_name, child in children:
            _element(child_name, child, indent + "  ", lines)
        lines.append(f"{indent}</{name}>\n")
        return
    # A scalar is always given a text node, even empty: pugixml then writes <name></name>.
    lines.append(f"{indent}<{name}>{xml_text(scalar_text(value, float_text))}</{name}>\n")

"""Reading the C-CDA a recipient received: each section as one string (its narrative and its coded entries)."""

from __future__ import annotations

from typing import Any

from lxml import etree

NS = {"cda": "urn:hl7-org:v3"}
#: Section LOINC codes of the CCD (C-CDA R2.1) the OpenEMR chart fills.
SECTIONS = {
    "problems": "11450-4",
    "medications": "10160-0",
    "allergies": "48765-2",
    "vitals": "8716-3",
    "results": "30954-2",
    "encounters": "46240-8",
}


def ccd_of(result: Any) -> etree._Element:
    """The CCD among a received message's attachments (the XDM or plain XML part)."""
    xml = [a for a in result.attachments if a.filename.endswith(".xml")]
    assert xml, f"no XML attachment in {[a.filename for a in result.attachments]}"
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(xml[0].data, parser)


def sections_text(document: etree._Element) -> dict[str, str]:
    """``{"patient": …, "problems": …}``: each section serialised (text, codes and values all searchable)."""
    out = {"patient": etree.tostring(document.find("cda:recordTarget", NS), encoding="unicode")}
    for name, code in SECTIONS.items():
        found = document.xpath(f"//cda:section[cda:code/@code='{code}']", namespaces=NS)
        out[name] = etree.tostring(found[0], encoding="unicode") if found else ""
    return out

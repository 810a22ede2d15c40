"""Small builders for hand-written FHIR inputs and helpers to look at one section/entry of the output."""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from ccda_mapper import build

NS = {"v3": "urn:hl7-org:v3", "sdtc": "urn:hl7-org:sdtc", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
NOW = "2024-03-01T10:00:00Z"
PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "name": [{"use": "official", "family": "Doe", "given": ["Jane"]}],
    "gender": "female",
    "birthDate": "1980-05-17",
}
_NSDECL = re.compile(r' xmlns(:\w+)?="[^"]*"')


def bundle(*resources: dict[str, Any], patient: dict[str, Any] | None = None) -> dict[str, Any]:
    """A collection Bundle with the patient first; every resource gets a relative fullUrl."""
    items = [patient or PATIENT, *resources]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"{r['resourceType']}/{r.get('id', i)}", "resource": r} for i, r in enumerate(items)
        ],
    }


def doc(*resources: dict[str, Any], **kw: Any) -> etree._Element:
    return etree.fromstring(build(bundle(*resources, patient=kw.pop("patient", None)), now=NOW, **kw).xml)


def section(root: etree._Element, template_root: str) -> etree._Element:
    found = root.xpath(f"//v3:section[v3:templateId/@root='{template_root}']", namespaces=NS)
    assert len(found) == 1, f"section {template_root}: {len(found)} found"
    return found[0]


def xml_of(el: etree._Element) -> str:
    """The element as compact XML without namespace declarations (what the exact expectations compare)."""
    return _NSDECL.sub("", etree.tostring(el, encoding="unicode"))


def squash(text: str) -> str:
    """Expected XML written over several lines → the compact form ``xml_of`` produces."""
    return re.sub(r">\s+<", "><", text.strip())

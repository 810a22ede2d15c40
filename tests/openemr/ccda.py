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


#: Which CCD section must carry each FHIR resource OpenEMR returns for the patient (by type / category).
_SECTION_OF = {
    "Condition": "problems",
    "MedicationRequest": "medications",
    "AllergyIntolerance": "allergies",
}


def _section_for(resource: dict[str, Any]) -> str | None:
    kind = resource.get("resourceType", "")
    if kind in _SECTION_OF:
        return _SECTION_OF[kind]
    if kind == "Observation":
        categories = {c.get("code") for cat in resource.get("category", []) for c in cat.get("coding", [])}
        if "vital-signs" in categories:
            return "vitals"
        if "laboratory" in categories:
            return "results"
    return None


_VALUE_KEYS = ("valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger")


def _measured(observation: dict[str, Any]) -> bool:
    """An observation that carries a result (OpenEMR also returns every vital of a form, measured or not,
    with a ``dataAbsentReason``; and panels whose members are the measurements)."""
    quantity = observation.get("valueQuantity")
    if isinstance(quantity, dict):
        return quantity.get("value") not in (None, "", 0, 0.0)
    return any(key in observation for key in _VALUE_KEYS)


def _identifiers(resource: dict[str, Any]) -> list[str]:
    """What a CCD entry for the resource must show: its codes, else its text (OpenEMR leaves some uncoded)."""
    if resource.get("resourceType") == "Observation":
        if (
            _section_for(resource) == "vitals"
            and not isinstance((resource.get("valueQuantity") or {}).get("value"), int | float)
            and not resource.get("component")
        ):
            # C-CDA R2.1 Vital Sign Observation (4.27) value SHALL be PQ: OpenEMR's "Temperature Location"
            # (8327-9, a coded value) has no place there; the mapper records it as skipped, with that reason.
            return []
        if resource.get("component"):  # blood pressure: the measured components are the entries
            return [
                c["code"]
                for part in resource["component"]
                if _measured(part)
                for c in part.get("code", {}).get("coding", [])
            ]
        if not _measured(resource):
            return []
    concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
    codes = [c["code"] for c in concept.get("coding", []) if c.get("code") and c.get("system")]
    # OpenEMR marks a missing code with the data-absent-reason system; that is no code of the record.
    codes = [c for c in codes if c not in {"unknown", "asked-unknown", "not-asked"}]
    return codes or ([concept["text"]] if concept.get("text") else [])


def missing_from_ccd(resources: list[dict[str, Any]], text: dict[str, str]) -> list[str]:
    """``type/id (identifiers)`` of every resource whose codes (or text) are absent from its CCD section."""
    missing = []
    for resource in resources:
        section = _section_for(resource)
        wanted = _identifiers(resource)
        if section is None or not wanted:
            continue
        if section == "vitals" or resource.get("component"):
            found = all(value in text[section] for value in wanted)  # every measured component
        else:
            found = any(value in text[section] for value in wanted)
        if not found:
            missing.append(f"{resource['resourceType']}/{resource.get('id')} {wanted} not in {section}")
    return missing

"""Which patient a changed resource belongs to (pure; no I/O).

A notification or a poll gives us a resource; the pipeline works per patient. The FHIR R4 Patient
compartment (http://hl7.org/fhir/R4/compartmentdefinition-patient.html) names, per resource type, the
elements that point at the patient; this table covers the types the sidecar watches. Only a literal
``Patient/<id>`` reference (relative, or absolute on our own server) counts: a logical or foreign reference
cannot be matched to a local record.
"""

from __future__ import annotations

from typing import Any

from fhir_bridge.fhir.shapes import parse_reference

#: Patient-compartment elements per resource type (R4 CompartmentDefinition "patient"), most common first.
PATIENT_PATHS: dict[str, tuple[str, ...]] = {
    "AllergyIntolerance": ("patient",),
    "CarePlan": ("subject",),
    "CareTeam": ("subject",),
    "Condition": ("subject",),
    "Consent": ("patient",),
    "Coverage": ("beneficiary", "subscriber", "policyHolder"),
    "Device": ("patient",),
    "DiagnosticReport": ("subject",),
    "DocumentReference": ("subject",),
    "Encounter": ("subject",),
    "Goal": ("subject",),
    "Immunization": ("patient",),
    "MedicationAdministration": ("subject",),
    "MedicationDispense": ("subject",),
    "MedicationRequest": ("subject",),
    "MedicationStatement": ("subject",),
    "Observation": ("subject",),
    "Procedure": ("subject",),
    "QuestionnaireResponse": ("subject",),
    "RelatedPerson": ("patient",),
    "ServiceRequest": ("subject",),
    "Specimen": ("subject",),
}


def patient_of(resource: dict[str, Any], base_url: str | None = None) -> str | None:
    """The id of the patient ``resource`` belongs to, or None when it names no local patient."""
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) else None
    for path in PATIENT_PATHS.get(str(rtype), ()):
        ref = resource.get(path)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            parsed = parse_reference(ref["reference"], base_url)
            if parsed and parsed[0] == "Patient":
                return parsed[1]
    return None

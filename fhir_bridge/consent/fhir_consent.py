"""An authorization as an R4 ``Consent`` resource (pure).

Why mirror it in FHIR: the EHR is the system of record for a patient's consents; writing it there (where the
server allows writes) lets clinicians see the sharing in the chart. Scope ``patient-privacy``, category
LOINC 59284-0 ("Patient Consent"), a ``permit`` provision for the recipient (``Consent.provision.actor`` with
role IRCP = information recipient) and the disclosure purpose; ``status`` follows revocation. The resource
is checked against the FHIR R4 model before it is handed to a writer (:mod:`fhir_bridge.fhir.validation`).
"""

from __future__ import annotations

from typing import Any

from fhir_bridge.db.models import Authorization
from fhir_bridge.fhir.validation import fhir_datetime, validated

_CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
_LOINC = "http://loinc.org"
_ROLE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_IDENTIFIER_SYSTEM = "urn:bbdirect:authorization"


def to_fhir_consent(auth: Authorization) -> dict[str, Any]:
    """The authorization as a valid R4 ``Consent`` (``FhirResourceInvalid`` if the builder made it bad)."""
    period: dict[str, str] = {"start": fhir_datetime(auth.created_at)}
    if auth.revoked_at:
        period["end"] = fhir_datetime(auth.revoked_at)
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "identifier": [{"system": _IDENTIFIER_SYSTEM, "value": auth.id}],
        "status": "active" if auth.active else "inactive",
        "scope": {"coding": [{"system": _CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": _LOINC, "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": {"reference": f"Patient/{auth.patient_id}"},
        "dateTime": fhir_datetime(auth.created_at),
        "policyRule": {
            "text": f"Blue Button Direct: send {'once' if auth.kind == 'once' else 'on every update'}"
        },
        "provision": {
            "type": "permit",
            "period": period,
            "actor": [
                {
                    "role": {
                        "coding": [{"system": _ROLE, "code": "IRCP", "display": "information recipient"}]
                    },
                    "reference": {"identifier": {"system": "urn:ietf:rfc:5322", "value": auth.address}},
                }
            ],
            "action": [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "disclose"}
                    ]
                }
            ],
            "purpose": [{"system": _ACT_REASON, "code": "PATRQT", "display": "patient requested"}],
        },
    }
    if auth.created_by_type == "clinician":
        resource["performer"] = [
            {"identifier": {"system": "urn:bbdirect:clinician", "value": auth.created_by_id}}
        ]
    if auth.payload_type == "documents" and auth.documents:
        resource["provision"]["data"] = [
            {"meaning": "instance", "reference": {"reference": doc["id"]}} for doc in auth.documents
        ]
    if auth.fhir_consent_id:
        resource["id"] = auth.fhir_consent_id
    return validated(resource)

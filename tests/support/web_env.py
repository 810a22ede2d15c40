"""Helpers for the web tests: the FHIR base of the HAPI fixture and seeding patients into it."""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests


def fhir_base(request: pytest.FixtureRequest) -> str:
    """The real HAPI server's FHIR base (``BBD_TEST_FHIR_BASE`` points at an already running one)."""
    override = os.environ.get("BBD_TEST_FHIR_BASE")
    if override:
        return override.rstrip("/")
    return fhir_base_of(request.getfixturevalue("hapi"))


def fhir_base_of(hapi: Any) -> str:
    for attr in ("fhir_base", "base_url", "url", "base"):
        value = getattr(hapi, attr, None)
        if isinstance(value, str) and value:
            return value.rstrip("/")
    return str(hapi).rstrip("/")


def create(base: str, resource: dict[str, Any]) -> str:
    answer = requests.post(
        f"{base}/{resource['resourceType']}",
        json=resource,
        timeout=60,
        headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"},
    )
    answer.raise_for_status()
    return str(answer.json()["id"])


def seed_patient(
    base: str, family: str, given: str, direct: str | None = None, birth: str = "1970-04-01"
) -> str:
    """A Patient (with a Direct address in telecom when given); returns its server-assigned id."""
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": "female",
        "birthDate": birth,
    }
    if direct:
        patient["telecom"] = [{"system": "email", "value": direct, "use": "home"}]
    return create(base, patient)


def seed_record(base: str, patient_id: str) -> None:
    """A small clinical record: a condition, an observation and one document the patient can choose."""
    ref = {"reference": f"Patient/{patient_id}"}
    create(
        base,
        {
            "resourceType": "Condition",
            "subject": ref,
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "problem-list-item",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "38341003",
                        "display": "Hypertensive disorder",
                    }
                ],
                "text": "High blood pressure",
            },
            "onsetDateTime": "2019-03-02",
        },
    )
    create(
        base,
        {
            "resourceType": "Observation",
            "status": "final",
            "subject": ref,
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "effectiveDateTime": "2024-05-01T10:00:00Z",
            "valueQuantity": {
                "value": 72,
                "unit": "/min",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        },
    )
    create(
        base,
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "subject": ref,
            "type": {
                "coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]
            },
            "description": "Visit note, May 2024",
            "date": "2024-05-01T10:30:00Z",
            "content": [{"attachment": {"contentType": "text/plain", "data": "VmlzaXQgbm90ZQ=="}}],
        },
    )

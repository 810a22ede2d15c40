"""The FHIR resources the sidecar writes (Consent, AuditEvent) are valid R4, and a broken one is refused."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_bridge.audit import to_fhir_audit_event
from fhir_bridge.consent.fhir_consent import to_fhir_consent
from fhir_bridge.db import AuditRecord, Authorization
from fhir_bridge.fhir.errors import FhirError
from fhir_bridge.fhir.validation import FhirResourceInvalid, validated


def _authorization(**changes: object) -> Authorization:
    fields: dict[str, object] = {
        "id": "a1",
        "patient_id": "p-1",
        "address": "dr@direct.example.org",
        "kind": "always",
        "created_by_type": "clinician",
        "created_by_id": "u7",
        "consent_method": "in_person",
        "payload_type": "documents",
        "documents": [{"id": "DocumentReference/9"}],
        "trust_policy": "trusted",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    fields.update(changes)
    return Authorization(**fields)


def _audit_row(**changes: object) -> AuditRecord:
    fields: dict[str, object] = {
        "id": 1,
        "at": datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        "actor_type": "patient",
        "actor_id": "p-1",
        "action": "send.attempt",
        "entity_type": "transmission",
        "entity_id": "t1",
        "patient_id": "p-1",
        "outcome": "success",
    }
    fields.update(changes)
    return AuditRecord(**fields)


@pytest.mark.parametrize(
    "auth",
    [
        _authorization(),
        _authorization(kind="once", created_by_type="patient", payload_type="ccd", documents=None),
        _authorization(revoked_at=datetime(2026, 2, 1, tzinfo=UTC), fhir_consent_id="c-5"),
        # As SQLite gives timestamps back: without a zone. They are UTC and must be written as such.
        _authorization(created_at=datetime(2026, 1, 1), revoked_at=datetime(2026, 2, 1)),
    ],
)
def test_built_consents_are_valid_r4(auth: Authorization) -> None:
    consent = to_fhir_consent(auth)

    assert validated(consent) is consent
    assert consent["dateTime"].endswith("+00:00")


@pytest.mark.parametrize("action", ["send.attempt", "authorization.create", "authorization.revoke", "other"])
@pytest.mark.parametrize("outcome", ["success", "retry", "failed"])
def test_built_audit_events_are_valid_r4(action: str, outcome: str) -> None:
    event = to_fhir_audit_event(_audit_row(action=action, outcome=outcome, at=datetime(2026, 1, 1)))

    assert validated(event) is event
    assert event["recorded"] == "2026-01-01T00:00:00+00:00"


def test_system_audit_event_without_patient_is_valid() -> None:
    event = to_fhir_audit_event(_audit_row(actor_type="system", actor_id="bbdirect", patient_id=None))

    assert event["agent"][0]["requestor"] is False and len(event["entity"]) == 1


def _broken_consent() -> dict[str, Any]:
    consent = copy.deepcopy(to_fhir_consent(_authorization()))
    consent["status"] = ["maybe"]  # Consent.status is one code (value sets are not checked by the models)
    del consent["scope"]  # Consent.scope is 1..1 in R4
    consent["colour"] = "maybe"  # no such element
    return consent


def _broken_audit_event() -> dict[str, Any]:
    event = copy.deepcopy(to_fhir_audit_event(_audit_row()))
    event["recorded"] = "2026-01-01T12:00:00"  # an instant needs a zone
    event["agent"][0]["requestor"] = "sometimes"
    return event


@pytest.mark.parametrize(
    ("broken", "paths"),
    [
        (_broken_consent, {"status", "scope", "colour"}),
        (_broken_audit_event, {"recorded", "agent.0.requestor"}),
    ],
)
def test_a_broken_resource_is_refused_with_a_code_and_no_values(
    broken: Callable[[], dict[str, Any]], paths: set[str]
) -> None:
    resource = broken()

    with pytest.raises(FhirResourceInvalid) as caught:
        validated(resource)

    error = caught.value
    assert isinstance(error, FhirError) and error.code == "fhir_resource_invalid" and error.transient is False
    named = {problem.split(":")[0] for problem in (error.detail or "").split("; ")}
    assert paths <= named
    assert "maybe" not in str(error.to_dict()) and "sometimes" not in str(error.to_dict())
    assert error.__cause__ is None and error.__suppress_context__  # pydantic's message quotes the values


def test_a_resource_type_the_sidecar_does_not_write_is_refused() -> None:
    with pytest.raises(FhirResourceInvalid, match="Patient"):
        validated({"resourceType": "Patient", "id": "p-1"})


def test_an_invalid_consent_is_never_handed_to_the_writer() -> None:
    """The builder itself refuses: a writer only ever receives a validated resource."""
    with pytest.raises(FhirResourceInvalid) as caught:
        to_fhir_consent(_authorization(address=""))  # an empty FHIR string is invalid

    assert "provision" in (caught.value.detail or "")

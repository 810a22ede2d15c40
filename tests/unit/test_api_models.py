"""The API's bodies declared once (fhir_bridge.api.models): the OpenAPI document is generated from them in
the 3.0 dialect it declares, the consent validator words their errors as the API always has, and the one
AuthorizationView is built from a stored row."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import get_args

import pytest

from fhir_bridge.api import models, openapi, serialize
from fhir_bridge.consent.errors import InvalidRequest
from fhir_bridge.consent.model import parse_request
from fhir_bridge.db.models import Authorization, Transmission
from fhir_bridge.pipeline.ports import AuthorizationView
from fhir_bridge.web import forms

BASE = {
    "patient_id": "p-1",
    "address": "dr@direct.example.org",
    "kind": "always",
    "created_by": {"type": "clinician", "id": "u7"},
    "consent_method": "in_person",
}


def _walk(node, path=()):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, i))


def test_the_document_schemas_are_the_models_in_the_openapi_30_dialect():
    doc = openapi.document()
    schemas = doc["components"]["schemas"]
    assert {m.__name__ for m in models.SCHEMA_MODELS} <= set(schemas)
    for path, node in _walk(schemas):
        # 2020-12 spellings that OpenAPI 3.0 validators do not understand must not leak into the document.
        assert "const" not in node and "$defs" not in node, path
        assert {"type": "null"} not in node.get("anyOf", []), path
        assert not isinstance(node.get("title"), str) or path[-1] == "properties", path
        assert "ge" not in node and "le" not in node, path
        refs = [v for k, v in node.items() if k == "$ref"]
        assert all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs), path
    create = schemas["AuthorizationCreate"]
    assert create["required"] == ["patient_id", "address", "kind", "created_by"]
    assert create["properties"]["kind"]["enum"] == list(get_args(models.Kind))
    assert create["properties"]["consent_method"]["enum"] == list(models.CONSENT_METHODS)
    assert create["properties"]["min_interval_seconds"] == {
        "type": "number",
        "minimum": 0,
        "maximum": models.MAX_CAP,
        "description": "Frequency cap, seconds between two sends (default: pipeline setting).",
    }
    assert schemas["Transmission"]["properties"]["reason"] == {
        "anyOf": [
            {"$ref": "#/components/schemas/Error"},
            {"type": "object", "nullable": True, "enum": [None]},
        ]
    }
    assert schemas["Transmission"]["properties"]["sent_at"] == {
        "type": "string",
        "format": "date-time",
        "nullable": True,
    }
    assert schemas["PatientToken"]["properties"]["token_type"] == {"type": "string", "enum": ["Bearer"]}
    assert schemas["Ping"]["additionalProperties"] is False
    json.dumps(doc)  # served as JSON


@pytest.mark.parametrize(
    ("over", "field", "message"),
    [
        ({"patient_id": None}, "patient_id", "patient_id is required"),
        ({"patient_id": " "}, "patient_id", "patient_id must not be empty"),
        ({"patient_id": "a/b"}, "patient_id", "patient_id must be a FHIR id (letters, digits, '-' and '.')"),
        ({"address": 42}, "address", "address must be a string"),
        ({"address": "x" * 400}, "address", "address is longer than 320 characters"),
        ({"kind": "weekly"}, "kind", "kind must be one of: once, always"),
        ({"created_by": "u7"}, "created_by", "created_by must be an object {type, id}"),
        ({"created_by": {"type": "robot", "id": "r"}}, "type", "type must be one of: patient, clinician"),
        ({"created_by": {"type": "clinician"}}, "id", "id is required"),
        ({"consent_method": None}, "consent_method", "consent_method must be one of: portal, in_person, clipboard"),
        ({"consent_method": "portal"}, "consent_method", "a clinician records consent given in person or on a clipboard form"),
        ({"consent_method": "clipboard"}, "attestation", "a clipboard consent needs the clinician's attestation"),
        ({"attestation": "signed\x00"}, "attestation", "attestation contains control characters"),
        ({"payload": []}, "payload", "payload must be an object {type, documents?}"),
        ({"payload": {"type": "x"}}, "type", "type must be one of: entire_record, documents"),
        ({"payload": {"type": "documents"}}, "payload.documents", "payload.documents must list the chosen documents"),
        ({"payload": {"type": "documents", "documents": ["1"] * 51}}, "payload.documents", "at most 50 documents"),
        ({"payload": {"type": "documents", "documents": [7]}}, "payload.documents", "each document is a DocumentReference id"),
        ({"send_now": "yes"}, "send_now", "send_now must be true or false"),
        ({"min_interval_seconds": "5"}, "min_interval_seconds", "min_interval_seconds must be a number from 0 to 2592000"),
    ],
)  # fmt: skip
def test_errors_keep_the_apis_messages(over, field, message):
    with pytest.raises(InvalidRequest) as info:
        parse_request({**BASE, **over})
    assert (info.value.code, info.value.field, info.value.message) == ("invalid_request", field, message)


def test_the_first_invalid_field_in_body_order_is_reported():
    with pytest.raises(InvalidRequest) as info:
        parse_request({**BASE, "kind": "weekly", "send_now": "yes", "consent_method": "portal"})
    assert info.value.field == "kind"
    with pytest.raises(InvalidRequest) as info:
        parse_request([BASE])
    assert (info.value.field, info.value.message) == (None, "the body must be a JSON object")


def test_the_web_forms_use_the_declared_choices():
    form = forms.clinician_add({"address": "dr@direct.example.org", "method": "portal", "attest": "yes"})
    assert "method" in form.errors  # the portal is the patient's way, as in the model
    for method in models.CLINICIAN_METHODS:
        form = forms.clinician_add({"address": "dr@direct.example.org", "method": method, "attest": "yes"})
        assert form.ok, form.errors
        parse_request({**BASE, "consent_method": method, "attestation": forms.attestation_text(method)})


def test_one_view_of_a_stored_authorization_for_the_pages_and_the_pipeline():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    auth = Authorization(
        id="a1",
        patient_id="p-1",
        address="dr@direct.example.org",
        kind="always",
        created_by_type="clinician",
        created_by_id="u7",
        consent_method="in_person",
        payload_type="documents",
        documents=[{"id": "DocumentReference/9", "title": "Labs"}],
        trust_policy="trusted",
        created_at=at,
    )
    tx = Transmission(id="t1", authorization_id="a1", state="failed", trigger="initial", reason_code="x")
    view = AuthorizationView.of(auth, [tx])
    assert (view.kind, view.trust_policy, view.payload_type, view.active) == (
        "always",
        "trusted",
        "documents",
        True,
    )
    assert view.latest is not None and (view.latest.id, view.latest.reason_code) == ("t1", "x")
    body = serialize.authorization(auth)
    assert body["payload"] == {
        "type": "documents",
        "documents": [{"id": "DocumentReference/9", "title": "Labs"}],
    }
    assert body["created_at"] == "2026-01-01T00:00:00Z" and body["latest_transmission"] is None

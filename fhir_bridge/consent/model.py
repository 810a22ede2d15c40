"""The authorization request: its vocabulary and its validation (pure; no database, no network).

The fields, the allowed values and the checks are declared once, in
:class:`fhir_bridge.api.models.AuthorizationCreate` (which also generates the OpenAPI schema); this module
turns that model's first error into the API's ``InvalidRequest`` (same message and ``field`` as before) and
the valid body into the flat request the service stores.

Why strict here: this is the boundary where the patient's (or clinician's) choice enters the system. Every
field is checked for type, vocabulary and size; the address gets the Direct syntax check and, in the
service, certificate discovery. Nothing half-valid is ever stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from fhir_bridge.api.models import (
    CONSENT_METHODS,
    CREATOR_TYPES,
    DOC_REF,
    FHIR_ID,
    KINDS,
    MAX_ACTOR_ID,
    MAX_ATTESTATION,
    MAX_CAP,
    MAX_DOCUMENTS,
    PAYLOAD_TYPES,
    Actor,
    ActorType,
    AuthorizationCreate,
    ConsentMethod,
    DocumentChoice,
    Kind,
    Payload,
    PayloadType,
    TrustPolicy,
)
from fhir_bridge.consent.errors import InvalidRequest

__all__ = [
    "CONSENT_METHODS",
    "CREATOR_TYPES",
    "DOC_REF",
    "FHIR_ID",
    "KINDS",
    "MAX_ACTOR_ID",
    "MAX_ATTESTATION",
    "MAX_CAP",
    "MAX_DOCUMENTS",
    "PAYLOAD_TYPES",
    "AuthorizationRequest",
    "parse_request",
]


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated request, flattened the way the service and the database store it."""

    patient_id: str
    address: str
    kind: Kind
    created_by_type: ActorType
    created_by_id: str
    consent_method: ConsentMethod
    attestation: str | None = None
    payload_type: PayloadType = "entire_record"
    documents: list[dict[str, str]] = field(default_factory=list)
    send_now: bool = True
    #: Optional frequency cap for this authorization (seconds between two sends); None = the global setting.
    min_interval_seconds: float | None = None

    @property
    def trust_policy(self) -> TrustPolicy:
        """Patient-created: a publicly discovered, valid certificate is enough; clinician-created: it must be
        trusted (chain to one of our anchors). See the Direct discovery issue and docs/direct.md.
        """
        return "trusted" if self.created_by_type == "clinician" else "public"

    @classmethod
    def of(cls, body: AuthorizationCreate) -> AuthorizationRequest:
        method = body.consent_method
        assert method is not None  # the model refuses a missing method
        return cls(
            patient_id=body.patient_id,
            address=body.address,
            kind=body.kind,
            created_by_type=body.created_by.type,
            created_by_id=body.created_by.id,
            consent_method=method,
            attestation=body.attestation,
            payload_type=body.payload.type,
            documents=[d.model_dump(exclude_none=True) for d in body.payload.documents],
            send_now=body.send_now,
            min_interval_seconds=body.min_interval_seconds,
        )


#: The allowed values of each choice, by where it sits in the body (for "must be one of" messages).
_CHOICES: dict[tuple[str | int, ...], tuple[str, ...]] = {
    ("kind",): KINDS,
    ("consent_method",): CONSENT_METHODS,
    ("created_by", "type"): CREATOR_TYPES,
    ("payload", "type"): PAYLOAD_TYPES,
}
#: What an object-valued field must look like, in the words the API has always used.
_OBJECTS = {
    "created_by": "created_by must be an object {type, id}",
    "payload": "payload must be an object {type, documents?}",
}


#: Every field name of the request body; other parts of a pydantic error location are union-member tags
#: (``float``, ``literal[...]``) that say which alternative failed, not where.
_FIELDS = frozenset(
    name for model in (AuthorizationCreate, Actor, Payload, DocumentChoice) for name in model.model_fields
)


def _reason(error: ErrorDetails) -> InvalidRequest:
    """Word one pydantic error as the API has always worded it (same message, same ``field``)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    loc = tuple(part for part in error["loc"] if isinstance(part, int) or part in _FIELDS)
    if kind == "invalid_request":  # a check of the models with its own message
        return InvalidRequest(str(ctx["message"]), field=ctx.get("field"))
    if not loc:
        return InvalidRequest("the body must be a JSON object")
    names = [part for part in loc if isinstance(part, str)]
    name = names[-1]
    if loc[:2] == ("payload", "documents"):
        if kind == "too_long":
            return InvalidRequest(f"at most {MAX_DOCUMENTS} documents", field="payload.documents")
        if len(loc) == 2:
            return InvalidRequest(
                "payload.documents must list the chosen documents", field="payload.documents"
            )
        return InvalidRequest("each document is a DocumentReference id", field="payload.documents")
    if loc in _CHOICES:
        return InvalidRequest(f"{name} must be one of: {', '.join(_CHOICES[loc])}", field=name)
    if name in _OBJECTS and len(loc) == 1:
        return InvalidRequest(_OBJECTS[name], field=name)
    if kind == "missing":
        return InvalidRequest(f"{name} is required", field=name)
    if loc == ("patient_id",):
        return InvalidRequest("patient_id must be a FHIR id (letters, digits, '-' and '.')", field=name)
    if name == "send_now":
        return InvalidRequest("send_now must be true or false", field=name)
    if name == "min_interval_seconds":
        return InvalidRequest(f"min_interval_seconds must be a number from 0 to {MAX_CAP}", field=name)
    return InvalidRequest(f"{name} is invalid", field=name)


def parse_request(data: Any) -> AuthorizationRequest:
    """Validate a JSON-like dict (REST body) into an :class:`AuthorizationRequest`; raise InvalidRequest
    naming the first invalid field (in the order of :class:`AuthorizationCreate`)."""
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object")
    try:
        body = AuthorizationCreate.model_validate(data)
    except ValidationError as exc:
        raise _reason(exc.errors()[0]) from None
    return AuthorizationRequest.of(body)

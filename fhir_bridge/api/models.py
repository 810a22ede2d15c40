"""The API's bodies and the authorization vocabulary, declared once.

Why one module: the allowed values (``KINDS``, ``CONSENT_METHODS``...) and the shapes of the request and
response bodies used to live in five places (hand-written OpenAPI dicts, the consent validator, the web forms,
the serialiser, the web view types) that had to be kept equal by hand. Here each is declared once, as a
``Literal`` or a pydantic model, and everything else derives from it: ``consent.model.parse_request``
validates with :class:`AuthorizationCreate`, ``api.serialize`` builds :class:`Authorization` /
:class:`Transmission`, the web forms take their choices from the Literals and ``api.openapi`` generates the
``components.schemas`` of ``/openapi.json`` from these classes.

This module is a leaf (it imports pydantic only), so every layer — pipeline ports, consent, web, api — may
use the vocabulary without an import cycle.

Validation messages: the REST API's error messages are part of its contract (the EMR module shows them), so
checks that have a human message of their own raise :class:`PydanticCustomError` with type
``invalid_request``, the message and the field it names (``ctx["field"]``); the remaining built-in pydantic
errors are worded by ``consent.model``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

# --- vocabulary ---------------------------------------------------------------------------------------------
Kind = Literal["once", "always"]
ActorType = Literal["patient", "clinician"]
ConsentMethod = Literal["portal", "in_person", "clipboard"]
PayloadType = Literal["entire_record", "documents"]
AuthorizationStatus = Literal["active", "revoked"]
TrustPolicy = Literal["public", "trusted"]
Trigger = Literal["initial", "change", "resend"]
TransmissionState = Literal[
    "queued",
    "building",
    "sending",
    "sent",
    "processed",
    "dispatched",
    "retrying",
    "failed",
    "skipped",
    "cancelled",
]

KINDS: tuple[Kind, ...] = get_args(Kind)
CREATOR_TYPES: tuple[ActorType, ...] = get_args(ActorType)
CONSENT_METHODS: tuple[ConsentMethod, ...] = get_args(ConsentMethod)
PAYLOAD_TYPES: tuple[PayloadType, ...] = get_args(PayloadType)
#: How a clinician records consent (a patient consents through the portal).
CLINICIAN_METHODS: tuple[ConsentMethod, ...] = tuple(m for m in CONSENT_METHODS if m != "portal")

#: FHIR ``id`` datatype: [A-Za-z0-9\-\.]{1,64} (the pattern as the OpenAPI document states it).
FHIR_ID_PATTERN = "^[A-Za-z0-9\\-.]{1,64}$"
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")
#: A DocumentReference chosen for an XDM payload: "DocumentReference/<id>" or a bare id.
DOC_REF = re.compile(r"(?:DocumentReference/)?([A-Za-z0-9\-.]{1,64})\Z")
MAX_ADDRESS = 320
MAX_ATTESTATION = 2000
MAX_DOCUMENTS = 50
MAX_ACTOR_ID = 128
MAX_TITLE = 200
#: Longest frequency cap accepted: 30 days.
MAX_CAP = 30 * 86400


def invalid(message: str, field: str | None) -> PydanticCustomError:
    """A validation error carrying the API's own message and the field it names."""
    return PydanticCustomError("invalid_request", "{message}", {"message": message, "field": field})


def _text(limit: int, *, required: bool = True) -> BeforeValidator:
    """Strip a text field and check it the way the API always has (presence, type, emptiness, length,
    control characters), each with its own message. The ``Field`` constraints next to it say the same
    limits for the schema; this runs first so the message is the API's, not pydantic's."""

    def check(value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or "value"
        if value is None:
            if required:
                raise invalid(f"{name} is required", name)
            return None
        if not isinstance(value, str):
            raise invalid(f"{name} must be a string", name)
        value = value.strip()
        if required and not value:
            raise invalid(f"{name} must not be empty", name)
        if len(value) > limit:
            raise invalid(f"{name} is longer than {limit} characters", name)
        if any(ord(c) < 0x20 and c not in "\n\r\t" for c in value):
            raise invalid(f"{name} contains control characters", name)
        return value if value or required else None

    return BeforeValidator(check)


_REQUEST = ConfigDict(strict=True)
_RESPONSE = ConfigDict(from_attributes=True)


# --- request bodies -----------------------------------------------------------------------------------------
class Actor(BaseModel):
    model_config = _REQUEST

    type: ActorType
    id: Annotated[str, Field(min_length=1, max_length=MAX_ACTOR_ID), _text(MAX_ACTOR_ID)]


class DocumentChoice(BaseModel):
    model_config = _REQUEST

    id: Annotated[str, Field(json_schema_extra={"example": "DocumentReference/123"})]
    title: str | SkipJsonSchema[None] = None

    @field_validator("id")
    @classmethod
    def _document_reference(cls, value: str) -> str:
        match = DOC_REF.match(value)
        if not match:
            raise invalid("each document is a DocumentReference id", "payload.documents")
        return "DocumentReference/" + match.group(1)

    @field_validator("title", mode="before")
    @classmethod
    def _short_title(cls, value: Any) -> str | None:
        """A title is a courtesy for the pages: anything but a non-blank string is dropped, not refused."""
        if isinstance(value, str) and value.strip():
            return value.strip()[:MAX_TITLE]
        return None


def _document_items(value: Any) -> Any:
    """A chosen document may be given as a bare id string; the model takes ``{"id": ...}``."""
    if isinstance(value, list):
        return [{"id": item} if isinstance(item, str) else item for item in value]
    return value


class Payload(BaseModel):
    model_config = _REQUEST

    type: PayloadType
    documents: Annotated[
        list[DocumentChoice],
        Field(
            max_length=MAX_DOCUMENTS,
            description="With type=documents: the DocumentReferences packaged as XDM.",
        ),
        BeforeValidator(_document_items),
    ] = []

    @model_validator(mode="before")
    @classmethod
    def _default_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" not in data:
            return {**data, "type": "entire_record"}
        return data

    @model_validator(mode="after")
    def _documents_match_type(self) -> Payload:
        if self.type == "documents" and not self.documents:
            raise invalid("payload.documents must list the chosen documents", "payload.documents")
        if self.type != "documents" and self.documents:
            raise invalid("documents are only allowed with payload type 'documents'", "payload.documents")
        return self


class AuthorizationCreate(BaseModel):
    # Field order is the order in which the first invalid field is reported (pydantic validates in order).
    model_config = _REQUEST

    patient_id: Annotated[str, Field(pattern=FHIR_ID_PATTERN), _text(64)]
    address: Annotated[
        str,
        Field(max_length=MAX_ADDRESS, json_schema_extra={"example": "dr.smith@direct.example.org"}),
        _text(MAX_ADDRESS),
    ]
    kind: Kind
    created_by: Actor
    consent_method: Annotated[
        ConsentMethod | SkipJsonSchema[None],
        Field(
            validate_default=True,
            description="portal (patients); in_person or clipboard + attestation (clinicians).",
        ),
    ] = None
    attestation: Annotated[
        str | None,
        Field(max_length=MAX_ATTESTATION, validate_default=True),
        _text(MAX_ATTESTATION, required=False),
    ] = None
    payload: Payload = Field(default_factory=lambda: Payload(type="entire_record"))
    send_now: bool = True
    min_interval_seconds: Annotated[
        Annotated[float, Field(ge=0, le=MAX_CAP)] | SkipJsonSchema[None],
        Field(description="Frequency cap, seconds between two sends (default: pipeline setting)."),
    ] = None

    @model_validator(mode="before")
    @classmethod
    def _patient_consents_through_the_portal(cls, data: Any) -> Any:
        """A patient's consent method defaults to the portal (a clinician must say how consent was given)."""
        if isinstance(data, dict) and "consent_method" not in data:
            creator = data.get("created_by")
            if isinstance(creator, dict) and creator.get("type") == "patient":
                return {**data, "consent_method": "portal"}
        return data

    @field_validator("consent_method")
    @classmethod
    def _method_given(cls, value: ConsentMethod | None) -> ConsentMethod:
        if value is None:
            raise invalid(f"consent_method must be one of: {', '.join(CONSENT_METHODS)}", "consent_method")
        return value

    @field_validator("attestation")
    @classmethod
    def _consent_fits_the_creator(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Checked right after the attestation (both fields it depends on are validated by then)."""
        creator, method = info.data.get("created_by"), info.data.get("consent_method")
        if creator is None or method is None:
            return value  # an earlier field failed and is reported first
        if creator.type == "patient" and method != "portal":
            raise invalid("a patient consents through the portal", "consent_method")
        if creator.type == "clinician" and method not in CLINICIAN_METHODS:
            raise invalid(
                "a clinician records consent given in person or on a clipboard form", "consent_method"
            )
        if method == "clipboard" and not value:
            # The clinician attests that the patient signed the paper form; without it there is no consent.
            raise invalid("a clipboard consent needs the clinician's attestation", "attestation")
        return value


class Revoke(BaseModel):
    """Who revoked (default: the caller, i.e. the token's patient or the API key)."""

    model_config = _REQUEST

    actor: Actor | SkipJsonSchema[None] = None


class Ping(BaseModel):
    """Optional: what changed (lets the sidecar recognise the same change seen twice)."""

    model_config = ConfigDict(extra="forbid")

    resource_type: Annotated[
        str | SkipJsonSchema[None], Field(json_schema_extra={"example": "Observation"})
    ] = None
    resource_id: str | SkipJsonSchema[None] = None
    version: str | SkipJsonSchema[None] = None
    reason: Annotated[str | SkipJsonSchema[None], Field(max_length=200)] = None


# --- response bodies ----------------------------------------------------------------------------------------
class Error(BaseModel):
    model_config = _RESPONSE

    code: str = Field(description="Stable machine code (e.g. bad_address, no_certificate).")
    message: str
    field: str | None = None
    detail: str | None = None
    retry_after: Annotated[
        Annotated[int, Field(ge=1)] | SkipJsonSchema[None],
        Field(description="With 429: seconds after which the same request passes (= Retry-After)."),
    ] = None


class ErrorResponse(BaseModel):
    error: Error


#: A timestamp that the answer always carries (null never documented).
Timestamp = datetime | SkipJsonSchema[None]


class Transmission(BaseModel):
    model_config = _RESPONSE

    id: str
    authorization_id: str
    patient_id: str | SkipJsonSchema[None] = None
    recipient: str | SkipJsonSchema[None] = None
    state: TransmissionState
    trigger: Trigger
    reason: Error | None = None
    attempts: int
    next_at: datetime | None = None
    message_id: str | None = None
    signed: bool | None = None
    encrypted: bool | None = None
    trusted: bool | None = None
    created_at: Timestamp = None
    updated_at: Timestamp = None
    sent_at: datetime | None = None
    processed_at: datetime | None = None
    dispatched_at: datetime | None = None


class Authorization(BaseModel):
    model_config = _RESPONSE

    id: str
    patient_id: str
    address: str
    kind: Kind
    status: AuthorizationStatus
    created_by: Actor
    consent_method: ConsentMethod
    attestation: str | None = None
    payload: Payload
    trust_policy: TrustPolicy | SkipJsonSchema[None] = None
    recipient_trusted: bool | None = None
    min_interval_seconds: float | None = None
    created_at: Timestamp = None
    revoked_at: datetime | None = None
    revoked_by: dict[str, Any] | None = None
    last_sent_at: datetime | None = None
    fhir_consent_id: str | None = None
    latest_transmission: Transmission | None = None


class AuthorizationResponse(BaseModel):
    authorization: Authorization


class AuthorizationList(BaseModel):
    authorizations: list[Authorization]


class TransmissionResponse(BaseModel):
    transmission: Transmission


class TransmissionList(BaseModel):
    transmissions: list[Transmission]


class PatientToken(BaseModel):
    token: str
    token_type: Literal["Bearer"]
    expires_in: int
    patient_id: str


class ChangeAccepted(BaseModel):
    patient_id: str
    due_at: datetime = Field(description="End of the debounce window.")


#: Every body of the API, by its name in ``components.schemas``.
SCHEMA_MODELS: tuple[type[BaseModel], ...] = (
    Error,
    ErrorResponse,
    Actor,
    Payload,
    AuthorizationCreate,
    Transmission,
    Authorization,
    AuthorizationResponse,
    AuthorizationList,
    TransmissionResponse,
    TransmissionList,
    Revoke,
    Ping,
    PatientToken,
    ChangeAccepted,
)

"""The OpenAPI 3 document of the REST API, served at ``/openapi.json``.

Why hand-written: the document is the contract the EMR plugin and integrators code against (and the
schemathesis run in tests/integration checks the server against it), so it is reviewed like code rather
than generated from whatever the routes happen to do.
"""

from __future__ import annotations

from typing import Any

from fhir_bridge import __version__

FHIR_ID = "^[A-Za-z0-9\\-.]{1,64}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("ErrorResponse"), description)


_NULLABLE_TS = {"type": "string", "format": "date-time", "nullable": True}


def _nullable_ref(name: str) -> dict[str, Any]:
    """A reference that may also be null. OpenAPI 3.0 ignores ``nullable`` next to ``allOf``/``$ref``
    (validators then reject null), so null is spelled out as its own alternative."""
    return {"anyOf": [_ref(name), {"type": "object", "nullable": True, "enum": [None]}]}


_ACTOR = {
    "type": "object",
    "required": ["type", "id"],
    "properties": {
        "type": {"type": "string", "enum": ["patient", "clinician"]},
        "id": {"type": "string", "minLength": 1, "maxLength": 128},
    },
}
_AUTH_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
_PID = {"name": "pid", "in": "path", "required": True, "schema": {"type": "string", "pattern": FHIR_ID}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {
                "type": "string",
                "description": "Stable machine code (e.g. bad_address, no_certificate).",
            },
            "message": {"type": "string"},
            "field": {"type": "string", "nullable": True},
            "detail": {"type": "string", "nullable": True},
            "retry_after": {
                "type": "integer",
                "minimum": 1,
                "description": "With 429: seconds after which the same request passes (= Retry-After).",
            },
        },
    },
    "ErrorResponse": {"type": "object", "required": ["error"], "properties": {"error": _ref("Error")}},
    "Actor": _ACTOR,
    "Payload": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": ["entire_record", "documents"]},
            "documents": {
                "type": "array",
                "maxItems": 50,
                "description": "With type=documents: the DocumentReferences packaged as XDM.",
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string", "example": "DocumentReference/123"},
                        "title": {"type": "string"},
                    },
                },
            },
        },
    },
    "AuthorizationCreate": {
        "type": "object",
        "required": ["patient_id", "address", "kind", "created_by"],
        "properties": {
            "patient_id": {"type": "string", "pattern": FHIR_ID},
            "address": {"type": "string", "maxLength": 320, "example": "dr.smith@direct.example.org"},
            "kind": {"type": "string", "enum": ["once", "always"]},
            "created_by": _ACTOR,
            "consent_method": {
                "type": "string",
                "enum": ["portal", "in_person", "clipboard"],
                "description": "portal (patients); in_person or clipboard + attestation (clinicians).",
            },
            "attestation": {"type": "string", "maxLength": 2000, "nullable": True},
            "payload": _ref("Payload"),
            "send_now": {"type": "boolean", "default": True},
            "min_interval_seconds": {
                "type": "number",
                "minimum": 0,
                "maximum": 2592000,
                "description": "Frequency cap, seconds between two sends (default: pipeline setting).",
            },
        },
    },
    "Transmission": {
        "type": "object",
        "required": ["id", "authorization_id", "state", "trigger", "attempts"],
        "properties": {
            "id": {"type": "string"},
            "authorization_id": {"type": "string"},
            "patient_id": {"type": "string"},
            "recipient": {"type": "string"},
            "trigger": {"type": "string", "enum": ["initial", "change", "resend"]},
            "state": {
                "type": "string",
                "enum": [
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
                ],
            },
            "reason": _nullable_ref("Error"),
            "attempts": {"type": "integer"},
            "next_at": _NULLABLE_TS,
            "message_id": {"type": "string", "nullable": True},
            "signed": {"type": "boolean", "nullable": True},
            "encrypted": {"type": "boolean", "nullable": True},
            "trusted": {"type": "boolean", "nullable": True},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "sent_at": _NULLABLE_TS,
            "processed_at": _NULLABLE_TS,
            "dispatched_at": _NULLABLE_TS,
        },
    },
    "Authorization": {
        "type": "object",
        "required": [
            "id",
            "patient_id",
            "address",
            "kind",
            "status",
            "created_by",
            "consent_method",
            "payload",
        ],
        "properties": {
            "id": {"type": "string"},
            "patient_id": {"type": "string"},
            "address": {"type": "string"},
            "kind": {"type": "string", "enum": ["once", "always"]},
            "status": {"type": "string", "enum": ["active", "revoked"]},
            "created_by": _ACTOR,
            "consent_method": {"type": "string", "enum": ["portal", "in_person", "clipboard"]},
            "attestation": {"type": "string", "nullable": True},
            "payload": _ref("Payload"),
            "trust_policy": {"type": "string", "enum": ["public", "trusted"]},
            "recipient_trusted": {"type": "boolean", "nullable": True},
            "min_interval_seconds": {"type": "number", "nullable": True},
            "created_at": {"type": "string", "format": "date-time"},
            "revoked_at": _NULLABLE_TS,
            "revoked_by": {"type": "object", "nullable": True},
            "last_sent_at": _NULLABLE_TS,
            "fhir_consent_id": {"type": "string", "nullable": True},
            "latest_transmission": _nullable_ref("Transmission"),
        },
    },
    "AuthorizationResponse": {
        "type": "object",
        "required": ["authorization"],
        "properties": {"authorization": _ref("Authorization")},
    },
    "AuthorizationList": {
        "type": "object",
        "required": ["authorizations"],
        "properties": {"authorizations": {"type": "array", "items": _ref("Authorization")}},
    },
    "TransmissionResponse": {
        "type": "object",
        "required": ["transmission"],
        "properties": {"transmission": _ref("Transmission")},
    },
    "TransmissionList": {
        "type": "object",
        "required": ["transmissions"],
        "properties": {"transmissions": {"type": "array", "items": _ref("Transmission")}},
    },
    "Revoke": {
        "type": "object",
        "properties": {"actor": _ACTOR},
        "description": "Who revoked (default: the caller, i.e. the token's patient or the API key).",
    },
    "Ping": {
        "type": "object",
        "additionalProperties": False,
        "description": "Optional: what changed (lets the sidecar recognise the same change seen twice).",
        "properties": {
            "resource_type": {"type": "string", "example": "Observation"},
            "resource_id": {"type": "string"},
            "version": {"type": "string"},
            "reason": {"type": "string", "maxLength": 200},
        },
    },
    "PatientToken": {
        "type": "object",
        "required": ["token", "token_type", "expires_in", "patient_id"],
        "properties": {
            "token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer"},
            "patient_id": {"type": "string"},
        },
    },
    "ChangeAccepted": {
        "type": "object",
        "required": ["patient_id", "due_at"],
        "properties": {
            "patient_id": {"type": "string"},
            "due_at": {"type": "string", "format": "date-time", "description": "End of the debounce window."},
        },
    },
}

_COMMON = {"401": _error("Missing or invalid credential."), "403": _error("Not allowed for this caller.")}

_RATE_LIMITED = {
    **_error(
        "Too soon: `resend_too_soon` (the authorization was sent less than `pipeline.resend_min_interval` "
        "ago) or `resend_quota_exceeded` (the caller's resends in the last hour reached its quota). "
        "Nothing was queued; the refusal is audited."
    ),
    "headers": {
        "Retry-After": {
            "description": "Seconds after which the same request passes.",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


_TOO_MANY_LOOKUPS = {
    **_error(
        "`too_many_lookups`: the patient started more than `server.lookups_per_minute` certificate lookups "
        "in the last minute. Nothing was looked up or saved."
    ),
    "headers": _RATE_LIMITED["headers"],
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Blue Button Direct sidecar API",
            "version": __version__,
            "description": "Authorizations (consent) to send a patient's record over Direct, their "
            'transmissions, and change pings. Errors: {"error": {code, message, field}}, stable codes.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (integrators, the EMR plugin) or a patient token (`pt.`...), "
                    "which may act only on its own patient.",
                }
            },
            "schemas": SCHEMAS,
        },
        "paths": {
            "/api/v1/authorizations": {
                "post": {
                    "operationId": "createAuthorization",
                    "summary": "Create an authorization (address checked by discovery); optionally send now.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("AuthorizationCreate")}},
                    },
                    "responses": {
                        "201": _json(_ref("AuthorizationResponse"), "Created; the first send is queued."),
                        "400": _error("The body is not JSON."),
                        **_COMMON,
                        "422": _error(
                            "Invalid field, or the address was refused (bad_address, no_certificate, "
                            "untrusted...), or a chosen document is not the patient's "
                            "(document_not_patients, document_unreadable). Nothing was saved."
                        ),
                        "429": _TOO_MANY_LOOKUPS,
                    },
                }
            },
            "/api/v1/patients/{pid}/authorizations": {
                "get": {
                    "operationId": "listAuthorizations",
                    "summary": "Every authorization of a patient, newest first.",
                    "parameters": [_PID],
                    "responses": {"200": _json(_ref("AuthorizationList"), "The list."), **_COMMON},
                }
            },
            "/api/v1/authorizations/{id}": {
                "get": {
                    "operationId": "getAuthorization",
                    "parameters": [_AUTH_ID],
                    "responses": {
                        "200": _json(_ref("AuthorizationResponse"), "The authorization."),
                        **_COMMON,
                        "404": _error("No such authorization."),
                    },
                }
            },
            "/api/v1/authorizations/{id}/revoke": {
                "post": {
                    "operationId": "revokeAuthorization",
                    "summary": "Revoke: nothing not yet handed to SMTP is sent; later changes send nothing.",
                    "parameters": [_AUTH_ID],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("Revoke")}},
                    },
                    "responses": {
                        "200": _json(_ref("AuthorizationResponse"), "Revoked (idempotent)."),
                        "400": _error("The body is not JSON."),
                        **_COMMON,
                        "404": _error("No such authorization."),
                        "422": _error("Invalid actor."),
                    },
                }
            },
            "/api/v1/authorizations/{id}/transmissions": {
                "get": {
                    "operationId": "listTransmissions",
                    "parameters": [_AUTH_ID],
                    "responses": {
                        "200": _json(_ref("TransmissionList"), "Newest first, with state and reason."),
                        **_COMMON,
                        "404": _error("No such authorization."),
                    },
                }
            },
            "/api/v1/transmissions/{id}": {
                "get": {
                    "operationId": "getTransmission",
                    "parameters": [_AUTH_ID],
                    "responses": {
                        "200": _json(_ref("TransmissionResponse"), "The transmission."),
                        **_COMMON,
                        "404": _error("No such transmission."),
                    },
                }
            },
            "/api/v1/transmissions/{id}/resend": {
                "post": {
                    "operationId": "resendTransmission",
                    "summary": "Queue a new transmission (new Message-ID) for the same authorization.",
                    "parameters": [
                        _AUTH_ID,
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 100},
                        },
                    ],
                    "responses": {
                        "202": _json(_ref("TransmissionResponse"), "Queued."),
                        **_COMMON,
                        "404": _error("No such transmission."),
                        "409": _error("The authorization was revoked."),
                        "429": _RATE_LIMITED,
                    },
                }
            },
            "/api/v1/patients/{pid}/tokens": {
                "post": {
                    "operationId": "issuePatientToken",
                    "summary": "Issue a token that may act only on this patient (API keys only).",
                    "parameters": [_PID],
                    "responses": {"201": _json(_ref("PatientToken"), "The token."), **_COMMON},
                }
            },
            "/api/v1/patients/{pid}/changed": {
                "post": {
                    "operationId": "patientChanged",
                    "summary": "Ping: the patient's record changed (debounced, then sent).",
                    "parameters": [_PID],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("Ping")}},
                    },
                    "responses": {
                        "202": _json(_ref("ChangeAccepted"), "Accepted."),
                        "400": _error("The body is not JSON."),
                        **_COMMON,
                        "422": _error("Invalid ping body."),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "The process is alive.")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "ready",
                    "summary": "Readiness. Needs an API key or an ops key (`server.ops_keys`) unless "
                    "`server.ops_public`.",
                    "responses": {
                        "200": _json({"type": "object"}, "Database reachable and migrated."),
                        "401": _error("Missing or invalid credential."),
                        "503": _json({"type": "object"}, "Not ready."),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics. Needs an API key or an ops key (`server.ops_keys`) "
                    "unless `server.ops_public`.",
                    "responses": {
                        "200": {
                            "description": "Prometheus metrics (queue depth, sends by outcome, latency).",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": _error("Missing or invalid credential."),
                    },
                }
            },
        },
    }

"""The OpenAPI 3 document of the REST API, served at ``/openapi.json``.

Why the schemas are generated and the paths written: the bodies are declared once, as the pydantic models of
:mod:`fhir_bridge.api.models` that also validate requests and shape answers, so the document cannot drift from
what the server does; the paths, operations, status codes and security are the contract the EMR plugin and
integrators code against (and the schemathesis run in tests/integration checks the server against), so they
stay written out here and are reviewed like code.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from fhir_bridge import __version__
from fhir_bridge.api.models import FHIR_ID_PATTERN, SCHEMA_MODELS


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("ErrorResponse"), description)


_AUTH_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
_PID = {
    "name": "pid",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": FHIR_ID_PATTERN},
}


def _openapi30(node: Any) -> Any:
    """Turn pydantic's JSON Schema (2020-12) into the OpenAPI 3.0 dialect the document declares.

    ``X | None`` becomes ``nullable``; a nullable reference is spelled as its own null alternative, because
    OpenAPI 3.0 ignores ``nullable`` next to ``$ref`` (validators then reject null); ``const`` becomes a
    one-value ``enum``; generated titles and ``default: null`` are dropped (they say nothing a reader needs).
    """
    if isinstance(node, list):
        return [_openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        out[key] = _openapi30(value) if key != "properties" else {k: _openapi30(v) for k, v in value.items()}
    alternatives = out.get("anyOf")
    if isinstance(alternatives, list) and {"type": "null"} in alternatives:
        rest = [a for a in alternatives if a != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" in rest[0]:
            out["anyOf"] = [rest[0], {"type": "object", "nullable": True, "enum": [None]}]
        elif len(rest) == 1:
            out = {**rest[0], **out, "nullable": True}
        else:
            out["anyOf"] = rest
            out["nullable"] = True
    return out


def _schemas() -> dict[str, Any]:
    """``components.schemas``: one entry per model of :mod:`fhir_bridge.api.models` (and what they use)."""
    _, generated = models_json_schema(
        [(model, "validation") for model in SCHEMA_MODELS], ref_template="#/components/schemas/{model}"
    )
    return {name: _openapi30(schema) for name, schema in generated.get("$defs", {}).items()}


SCHEMAS: dict[str, Any] = _schemas()

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

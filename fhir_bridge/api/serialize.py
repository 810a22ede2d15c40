"""JSON shapes of the REST API: the response models of :mod:`fhir_bridge.api.models`, filled from the
database.

Why through the models: the same classes generate the OpenAPI schemas, so an answer cannot carry a field,
an enum value or a format the document does not state (building one that does fails here, in tests, rather
than in an integrator's client).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from fhir_bridge.api import models
from fhir_bridge.db.models import Authorization, Transmission

#: States in which a transmission still waits for a next attempt (``next_at`` is meaningful only then).
_WAITING = frozenset({"queued", "retrying"})


def _ts(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def body(model: BaseModel) -> dict[str, Any]:
    """The model as JSON; fields left unset (a document's missing title, a reason's ``field``) stay absent,
    and timestamps keep the API's spelling (ISO 8601, ``Z`` for UTC)."""
    encoded: dict[str, Any] = _encode(model.model_dump(mode="python", exclude_unset=True))
    return encoded


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return _ts(value)
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def authorization_model(auth: Authorization, latest: Transmission | None = None) -> models.Authorization:
    return models.Authorization(
        id=auth.id,
        patient_id=auth.patient_id,
        address=auth.address,
        kind=auth.kind,  # type: ignore[arg-type]  # the column holds only values the model accepted
        status="active" if auth.active else "revoked",
        created_by=models.Actor(type=auth.created_by_type, id=auth.created_by_id),  # type: ignore[arg-type]  # as kind
        consent_method=auth.consent_method,  # type: ignore[arg-type]  # as kind
        attestation=auth.attestation,
        payload=models.Payload.model_validate(
            {"type": auth.payload_type, "documents": list(auth.documents or [])}
        ),
        trust_policy=auth.trust_policy,  # type: ignore[arg-type]  # as kind
        recipient_trusted=auth.recipient_trusted,
        min_interval_seconds=auth.min_interval_seconds,
        created_at=auth.created_at,
        revoked_at=auth.revoked_at,
        revoked_by={"type": auth.revoked_by_type, "id": auth.revoked_by_id} if auth.revoked_at else None,
        last_sent_at=auth.last_sent_at,
        fhir_consent_id=auth.fhir_consent_id,
        latest_transmission=transmission_model(latest) if latest is not None else None,
    )


def transmission_model(tx: Transmission) -> models.Transmission:
    reason = None
    if tx.reason_code:
        reason = models.Error(code=tx.reason_code, message=tx.reason_message or "", detail=tx.reason_detail)
    return models.Transmission(
        id=tx.id,
        authorization_id=tx.authorization_id,
        patient_id=tx.patient_id,
        recipient=tx.recipient,
        trigger=tx.trigger,  # type: ignore[arg-type]  # the column holds only the pipeline's triggers
        state=tx.state,  # type: ignore[arg-type]  # the column holds only the pipeline's states
        reason=reason,
        attempts=tx.attempts,
        next_at=tx.next_at if tx.state in _WAITING else None,
        message_id=tx.message_id,
        signed=tx.signed,
        encrypted=tx.encrypted,
        trusted=tx.trusted,
        created_at=tx.created_at,
        updated_at=tx.updated_at,
        sent_at=tx.sent_at,
        processed_at=tx.processed_at,
        dispatched_at=tx.dispatched_at,
    )


def authorization(auth: Authorization, latest: Transmission | None = None) -> dict[str, Any]:
    return body(authorization_model(auth, latest))


def transmission(tx: Transmission) -> dict[str, Any]:
    return body(transmission_model(tx))

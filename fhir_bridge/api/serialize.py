"""JSON shapes of the REST API (the OpenAPI schemas in ``openapi.py`` describe exactly these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir_bridge.db.models import Authorization, Transmission


def _ts(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def authorization(auth: Authorization, latest: Transmission | None = None) -> dict[str, Any]:
    return {
        "id": auth.id,
        "patient_id": auth.patient_id,
        "address": auth.address,
        "kind": auth.kind,
        "status": "active" if auth.active else "revoked",
        "created_by": {"type": auth.created_by_type, "id": auth.created_by_id},
        "consent_method": auth.consent_method,
        "attestation": auth.attestation,
        "payload": {"type": auth.payload_type, "documents": list(auth.documents or [])},
        "trust_policy": auth.trust_policy,
        "recipient_trusted": auth.recipient_trusted,
        "min_interval_seconds": auth.min_interval_seconds,
        "created_at": _ts(auth.created_at),
        "revoked_at": _ts(auth.revoked_at),
        "revoked_by": {"type": auth.revoked_by_type, "id": auth.revoked_by_id} if auth.revoked_at else None,
        "last_sent_at": _ts(auth.last_sent_at),
        "fhir_consent_id": auth.fhir_consent_id,
        "latest_transmission": transmission(latest) if latest is not None else None,
    }


def transmission(tx: Transmission) -> dict[str, Any]:
    reason = None
    if tx.reason_code:
        reason = {"code": tx.reason_code, "message": tx.reason_message or "", "detail": tx.reason_detail}
    return {
        "id": tx.id,
        "authorization_id": tx.authorization_id,
        "patient_id": tx.patient_id,
        "recipient": tx.recipient,
        "trigger": tx.trigger,
        "state": tx.state,
        "reason": reason,
        "attempts": tx.attempts,
        "next_at": _ts(tx.next_at) if tx.state in {"queued", "retrying"} else None,
        "message_id": tx.message_id,
        "signed": tx.signed,
        "encrypted": tx.encrypted,
        "trusted": tx.trusted,
        "created_at": _ts(tx.created_at),
        "updated_at": _ts(tx.updated_at),
        "sent_at": _ts(tx.sent_at),
        "processed_at": _ts(tx.processed_at),
        "dispatched_at": _ts(tx.dispatched_at),
    }

"""The authorization request: its vocabulary and its validation (pure; no database, no network).

Why strict here: this is the boundary where the patient's (or clinician's) choice enters the system. Every
field is checked for type, vocabulary and size; the address gets the Direct syntax check and, in the
service, certificate discovery. Nothing half-valid is ever stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fhir_bridge.consent.errors import InvalidRequest

KINDS = ("once", "always")
CREATOR_TYPES = ("patient", "clinician")
CONSENT_METHODS = ("portal", "in_person", "clipboard")
PAYLOAD_TYPES = ("entire_record", "documents")

#: FHIR ``id`` datatype: [A-Za-z0-9\-\.]{1,64}.
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")
#: A DocumentReference chosen for an XDM payload: "DocumentReference/<id>" or a bare id.
DOC_REF = re.compile(r"(?:DocumentReference/)?([A-Za-z0-9\-.]{1,64})\Z")
MAX_ATTESTATION = 2000
MAX_DOCUMENTS = 50
MAX_ACTOR_ID = 128
#: Longest frequency cap accepted: 30 days.
MAX_CAP = 30 * 86400


@dataclass(frozen=True)
class AuthorizationRequest:
    patient_id: str
    address: str
    kind: str
    created_by_type: str
    created_by_id: str
    consent_method: str
    attestation: str | None = None
    payload_type: str = "entire_record"
    documents: list[dict[str, str]] = field(default_factory=list)
    send_now: bool = True
    #: Optional frequency cap for this authorization (seconds between two sends); None = the global setting.
    min_interval_seconds: float | None = None

    @property
    def trust_policy(self) -> str:
        """Patient-created: a publicly discovered, valid certificate is enough; clinician-created: it must be
        trusted (chain to one of our anchors). See the Direct discovery issue and docs/direct.md.
        """
        return "trusted" if self.created_by_type == "clinician" else "public"


def _text(data: dict[str, Any], name: str, *, required: bool = True, limit: int = 320) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"{name} is required", field=name)
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string", field=name)
    value = value.strip()
    if required and not value:
        raise InvalidRequest(f"{name} must not be empty", field=name)
    if len(value) > limit:
        raise InvalidRequest(f"{name} is longer than {limit} characters", field=name)
    if any(ord(c) < 0x20 and c not in "\n\r\t" for c in value):
        raise InvalidRequest(f"{name} contains control characters", field=name)
    return value


def _choice(data: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    value = data.get(name, default)
    if value not in allowed:
        raise InvalidRequest(f"{name} must be one of: {', '.join(allowed)}", field=name)
    return value  # type: ignore[return-value]


def parse_request(data: Any) -> AuthorizationRequest:
    """Validate a JSON-like dict (REST body) into an :class:`AuthorizationRequest`; raise InvalidRequest."""
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object")
    patient_id = _text(data, "patient_id", limit=64)
    if not FHIR_ID.match(patient_id or ""):
        raise InvalidRequest(
            "patient_id must be a FHIR id (letters, digits, '-' and '.')", field="patient_id"
        )
    address = _text(data, "address", limit=320)
    kind = _choice(data, "kind", KINDS)
    creator = data.get("created_by")
    if not isinstance(creator, dict):
        raise InvalidRequest("created_by must be an object {type, id}", field="created_by")
    creator_type = _choice(creator, "type", CREATOR_TYPES)
    creator_id = _text(creator, "id", limit=MAX_ACTOR_ID)
    method = _choice(
        data, "consent_method", CONSENT_METHODS, default="portal" if creator_type == "patient" else None
    )
    attestation = _text(data, "attestation", required=False, limit=MAX_ATTESTATION) or None
    if creator_type == "patient" and method != "portal":
        raise InvalidRequest("a patient consents through the portal", field="consent_method")
    if creator_type == "clinician" and method == "portal":
        raise InvalidRequest(
            "a clinician records consent given in person or on a clipboard form", field="consent_method"
        )
    if method == "clipboard" and not attestation:
        # The clinician attests that the patient signed the paper form; without it there is no consent record.
        raise InvalidRequest("a clipboard consent needs the clinician's attestation", field="attestation")
    payload = data.get("payload", {"type": "entire_record"})
    if not isinstance(payload, dict):
        raise InvalidRequest("payload must be an object {type, documents?}", field="payload")
    payload_type = _choice(payload, "type", PAYLOAD_TYPES, default="entire_record")
    documents: list[dict[str, str]] = []
    if payload_type == "documents":
        raw_docs = payload.get("documents")
        if not isinstance(raw_docs, list) or not raw_docs:
            raise InvalidRequest(
                "payload.documents must list the chosen documents", field="payload.documents"
            )
        if len(raw_docs) > MAX_DOCUMENTS:
            raise InvalidRequest(f"at most {MAX_DOCUMENTS} documents", field="payload.documents")
        for item in raw_docs:
            ref = item.get("id") if isinstance(item, dict) else item
            match = DOC_REF.match(ref) if isinstance(ref, str) else None
            if not match:
                raise InvalidRequest("each document is a DocumentReference id", field="payload.documents")
            doc = {"id": "DocumentReference/" + match.group(1)}
            title = item.get("title") if isinstance(item, dict) else None
            if isinstance(title, str) and title.strip():
                doc["title"] = title.strip()[:200]
            documents.append(doc)
    elif payload.get("documents"):
        raise InvalidRequest(
            "documents are only allowed with payload type 'documents'", field="payload.documents"
        )
    send_now = data.get("send_now", True)
    if not isinstance(send_now, bool):
        raise InvalidRequest("send_now must be true or false", field="send_now")
    cap = data.get("min_interval_seconds")
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, (int, float)) or not 0 <= cap <= MAX_CAP
    ):
        raise InvalidRequest(
            f"min_interval_seconds must be a number from 0 to {MAX_CAP}", field="min_interval_seconds"
        )
    return AuthorizationRequest(
        patient_id=patient_id,  # type: ignore[arg-type]
        address=address,  # type: ignore[arg-type]
        kind=kind,
        created_by_type=creator_type,
        created_by_id=creator_id,  # type: ignore[arg-type]
        consent_method=method,
        attestation=attestation,
        payload_type=payload_type,
        documents=documents,
        send_now=send_now,
        min_interval_seconds=float(cap) if cap is not None else None,
    )

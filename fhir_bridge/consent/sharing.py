"""The consent service seen through the web pages' ``SharingService`` interface (``fhir_bridge.web.sharing``).

Why an adapter: the pages were written against five verbs and plain view objects; this maps them onto
:class:`ConsentService` so a page and the REST API create, list and revoke through exactly the same rules
(address check, first job in the same transaction, audit, FHIR Consent mirror). Built once, as
``Sidecar.sharing`` (``fhir_bridge.sidecar``).
"""

from __future__ import annotations

from typing import Any

from direct.address import DirectAddress
from fhir_bridge import audit
from fhir_bridge.consent.errors import NotFound
from fhir_bridge.consent.model import AuthorizationRequest
from fhir_bridge.consent.service import ConsentService
from fhir_bridge.db.models import Authorization, Transmission
from fhir_bridge.web.sharing import AddressCheck, AuthorizationView, TransmissionView


class ConsentSharing:
    def __init__(self, consent: ConsentService):
        self.consent = consent

    def check_address(self, address: str, *, trusted_only: bool, principal: str | None = None) -> Any:
        policy = "trusted" if trusted_only else "public"
        normalized, trusted = self.consent.check_address(address, policy, principal)
        return AddressCheck(normalized, DirectAddress.parse(normalized).domain, bool(trusted))

    def create(self, request: Any) -> Any:
        req = AuthorizationRequest(
            patient_id=request.patient_id,
            address=request.address,
            kind=request.kind,
            created_by_type=request.created_by_type,
            created_by_id=request.created_by_id,
            consent_method=request.consent_method,
            attestation=request.attestation,
            payload_type=request.payload_type,
            documents=list(request.documents or []),
            send_now=True,
        )
        auth = self.consent.create(req, audit.Actor(request.created_by_type, request.created_by_id))
        return self._view(auth)

    def list_for_patient(self, patient_id: str) -> list[Any]:
        return [self._view(a) for a in self.consent.list_for_patient(patient_id)]

    def get(self, patient_id: str, authorization_id: str) -> Any | None:
        try:
            auth = self.consent.get(authorization_id)
        except NotFound:
            return None
        return self._view(auth) if auth.patient_id == patient_id else None

    def revoke(self, patient_id: str, authorization_id: str, *, actor_type: str, actor_id: str) -> Any | None:
        if self.get(patient_id, authorization_id) is None:
            return None
        auth = self.consent.revoke(authorization_id, audit.Actor(actor_type, actor_id))
        return self._view(auth)

    def _view(self, auth: Authorization) -> Any:
        return AuthorizationView(
            id=auth.id,
            patient_id=auth.patient_id,
            address=auth.address,
            kind=auth.kind,  # type: ignore[arg-type]
            created_by_type=auth.created_by_type,  # type: ignore[arg-type]
            consent_method=auth.consent_method,  # type: ignore[arg-type]
            payload_type=auth.payload_type,  # type: ignore[arg-type]
            created_at=auth.created_at,
            documents=auth.documents,
            recipient_trusted=auth.recipient_trusted,
            revoked_at=auth.revoked_at,
            revoked_by_type=auth.revoked_by_type,
            transmissions=[_tx_view(t) for t in self.consent.transmissions(auth.id)],
        )


def _tx_view(tx: Transmission) -> Any:
    return TransmissionView(
        id=tx.id,
        state=tx.state,
        trigger=tx.trigger,
        reason_code=tx.reason_code,
        reason_message=tx.reason_message,
        reason_detail=tx.reason_detail,
        signed=tx.signed,
        encrypted=tx.encrypted,
        trusted=tx.trusted,
        created_at=tx.created_at,
        updated_at=tx.updated_at,
        sent_at=tx.sent_at,
        processed_at=tx.processed_at,
        dispatched_at=tx.dispatched_at,
        next_at=tx.next_at,
    )

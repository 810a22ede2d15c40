"""Which :class:`SharingService` the pages talk to.

The sidecar's own consent service is used when the app provides one in ``app.extensions["bbdirect.sharing"]``
(``create_app`` does); :class:`InMemorySharing` exists for page development without a database: it checks
the address syntax only and sends nothing.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from direct.address import DirectAddress
from fhir_bridge.web.sharing import (
    ActorType,
    AddressCheck,
    AuthorizationView,
    ShareRequest,
    SharingService,
    TransmissionView,
)


class InMemorySharing:
    """A stand-in for page development only: nothing is sent, nothing survives a restart."""

    def __init__(self) -> None:
        self._items: dict[str, AuthorizationView] = {}
        self._lock = threading.Lock()

    def check_address(self, address: str, *, trusted_only: bool) -> AddressCheck:
        parsed = DirectAddress.parse(address)
        return AddressCheck(str(parsed), parsed.domain, trusted=False)

    def create(self, request: ShareRequest) -> AuthorizationView:
        check = self.check_address(request.address, trusted_only=request.created_by_type == "clinician")
        now = datetime.now(UTC)
        view = AuthorizationView(
            id=str(uuid.uuid4()),
            patient_id=request.patient_id,
            address=check.address,
            kind=request.kind,
            created_by_type=request.created_by_type,
            consent_method=request.consent_method,
            payload_type=request.payload_type,
            documents=request.documents,
            created_at=now,
            recipient_trusted=check.trusted,
            transmissions=[
                TransmissionView(id=str(uuid.uuid4()), state="queued", created_at=now, updated_at=now)
            ],
        )
        with self._lock:
            self._items[view.id] = view
        return view

    def list_for_patient(self, patient_id: str) -> list[AuthorizationView]:
        with self._lock:
            found = [v for v in self._items.values() if v.patient_id == patient_id]
        return sorted(found, key=lambda v: v.created_at, reverse=True)

    def get(self, patient_id: str, authorization_id: str) -> AuthorizationView | None:
        with self._lock:
            view = self._items.get(authorization_id)
        return view if view and view.patient_id == patient_id else None

    def revoke(
        self, patient_id: str, authorization_id: str, *, actor_type: ActorType, actor_id: str
    ) -> AuthorizationView | None:
        with self._lock:
            view = self._items.get(authorization_id)
            if not view or view.patient_id != patient_id:
                return None
            if view.revoked_at is None:
                view = self._items[authorization_id] = replace(
                    view, revoked_at=datetime.now(UTC), revoked_by_type=actor_type
                )
            return view


class ConsentSharing:
    """The pages' interface over the sidecar's :class:`fhir_bridge.consent.service.ConsentService`."""

    def __init__(self, consent: Any):
        self.consent = consent

    def check_address(self, address: str, *, trusted_only: bool) -> AddressCheck:
        normalized, trusted = self.consent.check_address(address, "trusted" if trusted_only else "public")
        return AddressCheck(normalized, normalized.rpartition("@")[2], bool(trusted))

    def create(self, request: ShareRequest) -> AuthorizationView:
        from fhir_bridge.audit import Actor
        from fhir_bridge.consent.model import AuthorizationRequest

        req = AuthorizationRequest(
            patient_id=request.patient_id,
            address=request.address,
            kind=request.kind,
            created_by_type=request.created_by_type,
            created_by_id=request.created_by_id[:128],
            consent_method=request.consent_method,
            attestation=request.attestation,
            payload_type=request.payload_type,
            documents=list(request.documents or []),
            send_now=True,
        )
        auth = self.consent.create(req, Actor(request.created_by_type, request.created_by_id[:128]))
        return self._view(auth)

    def list_for_patient(self, patient_id: str) -> list[AuthorizationView]:
        return [self._view(a) for a in self.consent.list_for_patient(patient_id)]

    def get(self, patient_id: str, authorization_id: str) -> AuthorizationView | None:
        from fhir_bridge.consent.errors import NotFound

        try:
            auth = self.consent.get(authorization_id)
        except NotFound:
            return None
        return self._view(auth) if auth.patient_id == patient_id else None

    def revoke(
        self, patient_id: str, authorization_id: str, *, actor_type: ActorType, actor_id: str
    ) -> AuthorizationView | None:
        from fhir_bridge.audit import Actor

        if self.get(patient_id, authorization_id) is None:  # only the signed-in patient's own
            return None
        return self._view(self.consent.revoke(authorization_id, Actor(actor_type, actor_id[:128])))

    def _view(self, auth: Any) -> AuthorizationView:
        return AuthorizationView(
            id=auth.id,
            patient_id=auth.patient_id,
            address=auth.address,
            kind=auth.kind,
            created_by_type=auth.created_by_type,
            consent_method=auth.consent_method,
            payload_type=auth.payload_type,
            created_at=auth.created_at,
            documents=auth.documents,
            recipient_trusted=auth.recipient_trusted,
            revoked_at=auth.revoked_at,
            revoked_by_type=auth.revoked_by_type,
            transmissions=[_tx_view(t) for t in self.consent.transmissions(auth.id)],
        )


def _tx_view(tx: Any) -> TransmissionView:
    return TransmissionView(
        id=tx.id,
        state=tx.state,
        trigger=tx.trigger,
        reason_code=tx.reason_code,
        reason_message=tx.reason_detail or tx.reason_message
        if tx.reason_code == "delivery_refused"
        else tx.reason_message,
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


def sharing_service(app: Flask) -> SharingService:
    """The app's sharing service: given by create_app, else built over its consent service, else in-memory."""
    service = app.extensions.get("bbdirect.sharing")
    if service is None:
        sidecar = app.extensions.get("bbdirect")
        consent = getattr(sidecar, "consent", None)
        service = ConsentSharing(consent) if consent is not None else InMemorySharing()
        app.extensions["bbdirect.sharing"] = service
    return service

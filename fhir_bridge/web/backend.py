"""Which :class:`SharingService` the pages talk to.

``create_app`` puts the consent service, adapted by ``fhir_bridge.consent.sharing.ConsentSharing``, in
``app.extensions["bbdirect.sharing"]``. :class:`InMemorySharing` exists for page development without a
database: it checks the address syntax only and sends nothing.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime

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


def sharing_service(app: Flask) -> SharingService:
    """The app's sharing service: set by create_app (``fhir_bridge.consent.sharing``), else in-memory."""
    service = app.extensions.get("bbdirect.sharing")
    if service is None:
        consent = getattr(app.extensions.get("bbdirect"), "consent", None)
        if consent is not None:
            from fhir_bridge.consent.sharing import ConsentSharing

            service = ConsentSharing(consent)
        else:
            service = InMemorySharing()
        app.extensions["bbdirect.sharing"] = service
    return service

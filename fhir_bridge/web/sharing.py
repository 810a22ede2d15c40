"""The web pages' view of the consent service: one small interface, plain value objects.

Why an interface of its own: the pages need five verbs (check an address, create, list, get, revoke) and
read-only views of authorizations and their transmissions. Keeping them here lets the pages be written and
tested independently of how the consent service stores things; :func:`fhir_bridge.web.backend.default_backend`
picks the real service. Field names follow ``fhir_bridge.db.models`` so an adapter is a field copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

Kind = Literal["once", "always"]
ActorType = Literal["patient", "clinician"]
ConsentMethod = Literal["portal", "in_person", "clipboard"]
PayloadType = Literal["entire_record", "documents"]


@dataclass(frozen=True)
class ShareRequest:
    """What a person asked for on a page (validated by the page before it gets here)."""

    patient_id: str
    address: str
    kind: Kind
    created_by_type: ActorType
    created_by_id: str
    consent_method: ConsentMethod
    payload_type: PayloadType = "entire_record"
    #: Chosen documents, each ``{"id": "DocumentReference/1", "title": "..."}`` (payload_type = documents).
    documents: list[dict[str, str]] | None = None
    #: The clinician's attestation text (clinician-created authorizations only).
    attestation: str | None = None


@dataclass(frozen=True)
class AddressCheck:
    """Outcome of checking an address before anything is saved: it can be used, and whether it is trusted."""

    address: str
    domain: str
    #: True when the recipient's certificate chains to one of our trust anchors / bundles.
    trusted: bool


@dataclass(frozen=True)
class TransmissionView:
    id: str
    state: str  # queued | building | sending | retrying | sent | processed | dispatched | failed
    trigger: str = "initial"
    reason_code: str | None = None
    reason_message: str | None = None
    #: Machine detail of the failure, e.g. the recipient server's SMTP reply ("550 5.7.1 ..."); never PHI.
    reason_detail: str | None = None
    signed: bool | None = None
    encrypted: bool | None = None
    trusted: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    sent_at: datetime | None = None
    processed_at: datetime | None = None
    dispatched_at: datetime | None = None
    next_at: datetime | None = None


@dataclass(frozen=True)
class AuthorizationView:
    id: str
    patient_id: str
    address: str
    kind: Kind
    created_by_type: ActorType
    consent_method: ConsentMethod
    payload_type: PayloadType
    created_at: datetime
    documents: list[dict[str, str]] | None = None
    recipient_trusted: bool | None = None
    revoked_at: datetime | None = None
    revoked_by_type: str | None = None
    #: Newest first.
    transmissions: list[TransmissionView] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def latest(self) -> TransmissionView | None:
        return self.transmissions[0] if self.transmissions else None


class SharingService(Protocol):
    """What the pages need from the consent service. Errors are ``direct.errors.DirectError`` subclasses."""

    def check_address(
        self, address: str, *, trusted_only: bool, principal: str | None = None
    ) -> AddressCheck:
        """Syntax, then certificate discovery (and trust when ``trusted_only``); raises DirectError
        (``too_many_lookups`` when ``principal`` started too many lookups this minute)."""
        ...

    def create(self, request: ShareRequest) -> AuthorizationView:
        """Check the address again, save the authorization and queue the first send; raises DirectError."""
        ...

    def list_for_patient(self, patient_id: str) -> list[AuthorizationView]:
        """Every authorization of this patient, newest first, with its transmissions."""
        ...

    def get(self, patient_id: str, authorization_id: str) -> AuthorizationView | None:
        """One authorization, only if it belongs to this patient."""
        ...

    def revoke(
        self, patient_id: str, authorization_id: str, *, actor_type: ActorType, actor_id: str
    ) -> AuthorizationView | None:
        """Stop the authorization (nothing not yet handed to SMTP is sent); None when not this patient's."""
        ...

"""What the pipeline needs from the outside world, as small protocols.

Why protocols: the pipeline's logic (states, retries, idempotency) must not care whether the record comes
from HAPI or OpenEMR, or how S/MIME is done. ``fhir_bridge.wiring`` plugs in the real pieces (FhirClient +
``ccda_mapper`` + ``direct.DirectAgent``); tests can plug the same real pieces against loopback services.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from fhir_bridge.api.models import ActorType, ConsentMethod, Kind

if TYPE_CHECKING:
    from fhir_bridge.db.models import Authorization, Transmission


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    media_type: str


@dataclass(frozen=True)
class Document:
    """What one transmission carries: the attachments and the hash of their clinical content."""

    attachments: list[Attachment]
    #: Hash over the clinical content only (``ccda_mapper.clinical_hash``): equal hash = nothing new to send.
    clinical_hash: str
    #: Short text body of the message (no PHI).
    text: str = "Please find attached a health record sent at the patient's request."


@dataclass(frozen=True)
class Prepared:
    """A sealed message ready for SMTP. Its bytes are stored before hand-over so a retry re-sends them."""

    message_id: str
    mail_from: str
    rcpt_to: list[str]
    raw: bytes
    signed: bool = True
    encrypted: bool = True
    trusted: bool | None = None


@dataclass(frozen=True)
class TransmissionView:
    """One transmission as the pages show it (field names follow ``fhir_bridge.db.models.Transmission``)."""

    id: str
    state: str  # queued | building | sending | retrying | sent | processed | dispatched | failed ...
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

    @classmethod
    def of(cls, tx: Transmission) -> TransmissionView:
        return cls(**{name: getattr(tx, name) for name in _TRANSMISSION_FIELDS})


@dataclass(frozen=True)
class AuthorizationView:
    """An authorization without the ORM: what a document builder or sender needs (the first six fields,
    filled by the pipeline) and what the pages show (the rest, filled by :meth:`of`).

    Why one class for both: it is one concept; the pages and the pipeline read the same row. Field names
    follow ``fhir_bridge.db.models.Authorization`` so :meth:`of` is a field copy.
    """

    id: str
    patient_id: str
    address: str
    #: One of ``PayloadType`` (``str`` because the pipeline copies it from the column).
    payload_type: str
    documents: list[dict[str, Any]] = field(default_factory=list)
    #: One of ``TrustPolicy`` (as ``payload_type``).
    trust_policy: str = "public"
    kind: Kind | None = None
    created_by_type: ActorType | None = None
    consent_method: ConsentMethod | None = None
    created_at: datetime | None = None
    recipient_trusted: bool | None = None
    revoked_at: datetime | None = None
    revoked_by_type: str | None = None
    #: Newest first.
    transmissions: list[TransmissionView] = field(default_factory=list)

    @classmethod
    def of(cls, auth: Authorization, transmissions: Iterable[Transmission] = ()) -> AuthorizationView:
        """The view of a stored authorization (and its transmissions, newest first)."""
        return cls(
            id=auth.id,
            patient_id=auth.patient_id,
            address=auth.address,
            payload_type=auth.payload_type,
            documents=list(auth.documents or []),
            trust_policy=auth.trust_policy,
            kind=auth.kind,  # type: ignore[arg-type]  # the column holds only values the API model accepted
            created_by_type=auth.created_by_type,  # type: ignore[arg-type]  # as kind
            consent_method=auth.consent_method,  # type: ignore[arg-type]  # as kind
            created_at=auth.created_at,
            recipient_trusted=auth.recipient_trusted,
            revoked_at=auth.revoked_at,
            revoked_by_type=auth.revoked_by_type,
            transmissions=[TransmissionView.of(tx) for tx in transmissions],
        )

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def latest(self) -> TransmissionView | None:
        return self.transmissions[0] if self.transmissions else None


_TRANSMISSION_FIELDS = tuple(f.name for f in fields(TransmissionView))


class DocumentBuilder(Protocol):
    def build(self, auth: AuthorizationView) -> Document:
        """Gather the patient's record (FHIR) and build what is sent. Raises on FHIR or mapping failure."""
        ...


class Sender(Protocol):
    def prepare(self, auth: AuthorizationView, document: Document) -> Prepared:
        """Discover the recipient certificate, check trust under the authorization policy, sign, encrypt."""
        ...

    def deliver(self, prepared: Prepared) -> None:
        """Hand the stored bytes to SMTP; raises ``TransientDeliveryError`` / ``PermanentDeliveryError``."""
        ...


class AddressChecker(Protocol):
    def check(self, address: str, policy: str) -> bool | None:
        """Validate syntax then discover a usable certificate under ``policy`` (``public``/``trusted``).

        Returns whether the recipient is trusted (chains to an anchor); raises the specific ``DirectError``.
        """
        ...


class FhirWriter(Protocol):
    def write(self, resource: dict[str, Any]) -> str | None:
        """Create or update a resource (Consent, AuditEvent) when the server allows; its id or None."""
        ...

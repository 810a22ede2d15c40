"""What the pipeline needs from the outside world, as small protocols.

Why protocols: the pipeline's logic (states, retries, idempotency) must not care whether the record comes
from HAPI or OpenEMR, or how S/MIME is done. ``fhir_bridge.wiring`` plugs in the real pieces (FhirClient +
``ccda_mapper`` + ``direct.DirectAgent``); tests can plug the same real pieces against loopback services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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
class AuthorizationView:
    """The parts of an authorization a document builder or sender needs (no ORM object crosses the port)."""

    id: str
    patient_id: str
    address: str
    payload_type: str
    documents: list[dict[str, Any]] = field(default_factory=list)
    trust_policy: str = "public"


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

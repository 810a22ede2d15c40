"""The web pages' view of the consent service: one small interface, plain value objects.

Why an interface of its own: the pages need five verbs (check an address, create, list, get, revoke) and
read-only views of authorizations and their transmissions. Keeping them here lets the pages be written and
tested independently of how the consent service stores things; :func:`fhir_bridge.web.backend.default_backend`
picks the real service. The value types are not the pages' own: the request is the consent service's
``AuthorizationRequest`` and the views are the pipeline's ``AuthorizationView`` / ``TransmissionView``
(built from the database rows by ``AuthorizationView.of``), so one authorization has one description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fhir_bridge.api.models import ActorType, ConsentMethod, Kind, PayloadType
from fhir_bridge.consent.model import AuthorizationRequest
from fhir_bridge.pipeline.ports import AuthorizationView, TransmissionView

__all__ = [
    "ActorType",
    "AddressCheck",
    "AuthorizationView",
    "ConsentMethod",
    "Kind",
    "PayloadType",
    "ShareRequest",
    "SharingService",
    "TransmissionView",
]

#: What a person asked for on a page (validated by the page's form before it gets here): the same request
#: the REST API builds, so the consent service sees one type whichever door it came through.
ShareRequest = AuthorizationRequest


@dataclass(frozen=True)
class AddressCheck:
    """Outcome of checking an address before anything is saved: it can be used, and whether it is trusted."""

    address: str
    domain: str
    #: True when the recipient's certificate chains to one of our trust anchors / bundles.
    trusted: bool


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

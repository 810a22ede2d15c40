"""The consent service seen through the web pages' ``SharingService`` interface (``fhir_bridge.web.sharing``).

Why an adapter: the pages were written against five verbs and plain view objects; this maps them onto
:class:`ConsentService` so a page and the REST API create, list and revoke through exactly the same rules
(address check, first job in the same transaction, audit, FHIR Consent mirror). Built once, as
``Sidecar.sharing`` (``fhir_bridge.sidecar``).
"""

from __future__ import annotations

from direct.address import DirectAddress
from fhir_bridge import audit
from fhir_bridge.consent.errors import NotFound
from fhir_bridge.consent.service import ConsentService
from fhir_bridge.db.models import Authorization
from fhir_bridge.web.sharing import AddressCheck, AuthorizationView, ShareRequest


class ConsentSharing:
    def __init__(self, consent: ConsentService):
        self.consent = consent

    def check_address(
        self, address: str, *, trusted_only: bool, principal: str | None = None
    ) -> AddressCheck:
        policy = "trusted" if trusted_only else "public"
        normalized, trusted = self.consent.check_address(address, policy, principal)
        return AddressCheck(normalized, DirectAddress.parse(normalized).domain, bool(trusted))

    def create(self, request: ShareRequest) -> AuthorizationView:
        # A page's request is the consent service's own AuthorizationRequest (ShareRequest is that type).
        auth = self.consent.create(request, audit.Actor(request.created_by_type, request.created_by_id))
        return self._view(auth)

    def list_for_patient(self, patient_id: str) -> list[AuthorizationView]:
        return [self._view(a) for a in self.consent.list_for_patient(patient_id)]

    def get(self, patient_id: str, authorization_id: str) -> AuthorizationView | None:
        try:
            auth = self.consent.get(authorization_id)
        except NotFound:
            return None
        return self._view(auth) if auth.patient_id == patient_id else None

    def revoke(
        self, patient_id: str, authorization_id: str, *, actor_type: str, actor_id: str
    ) -> AuthorizationView | None:
        if self.get(patient_id, authorization_id) is None:
            return None
        auth = self.consent.revoke(authorization_id, audit.Actor(actor_type, actor_id))
        return self._view(auth)

    def _view(self, auth: Authorization) -> AuthorizationView:
        return AuthorizationView.of(auth, self.consent.transmissions(auth.id))

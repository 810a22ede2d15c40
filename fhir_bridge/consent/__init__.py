"""Authorizations (consent): ``model`` (request vocabulary + validation), ``service`` (create, revoke, list),
``fhir_consent`` (the FHIR ``Consent`` mirror), ``errors`` (validation / lookup errors with stable codes).
"""

from fhir_bridge.consent.errors import ConsentError, Forbidden, InvalidRequest, NotFound
from fhir_bridge.consent.model import AuthorizationRequest, parse_request

__all__ = ["AuthorizationRequest", "ConsentError", "Forbidden", "InvalidRequest", "NotFound", "parse_request"]

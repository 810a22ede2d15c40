"""Talking to the FHIR R4 server: HTTP client with retries, authentication, one patient's record.

``client.FhirClient`` is the only thing in the sidecar that issues FHIR HTTP requests; ``auth`` supplies the
``Authorization`` header (none, static bearer, SMART Backend Services); ``gather`` turns "patient X" into the
list of resources the C-CDA mapper needs. Every failure is a ``errors.FhirError`` subclass with a stable code.
"""

from __future__ import annotations

from fhir_bridge.fhir.client import Capabilities, FhirClient
from fhir_bridge.fhir.errors import FhirError

__all__ = ["Capabilities", "FhirClient", "FhirError"]

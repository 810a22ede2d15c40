"""Pings: an EMR plugin says "look at this patient now" (``POST /api/v1/patients/{id}/changed``).

The route and its authentication belong to the API; this module only turns the path id and the optional JSON
body into a ``ChangeEvent``, refusing anything malformed with ``PingError`` (HTTP 400 at the route).
Accepted body (all optional): ``{"resource_type": "Observation", "resource_id": "123", "version": "2"}``.
"""

from __future__ import annotations

from typing import Any

from fhir_bridge.errors import BridgeError
from fhir_bridge.fhir.shapes import ID_RE, TYPE_RE
from fhir_bridge.sources.events import SOURCE_PING, ChangeEvent

_ALLOWED_KEYS = {"resource_type", "resource_id", "version", "reason"}


class PingError(BridgeError, ValueError):
    """A ping that cannot be accepted; ``code`` is stable for the API's error body."""

    def __init__(self, code: str, message: str):
        super().__init__(message, code=code)


def ping_event(patient_id: str, body: Any = None) -> ChangeEvent:
    """Validate a ping and return its event (pure)."""
    if not isinstance(patient_id, str) or not ID_RE.match(patient_id):
        raise PingError("bad_patient_id", "patient id is not a valid FHIR id")
    if body is None or body == {}:
        return ChangeEvent(patient_id=patient_id, source=SOURCE_PING)
    if not isinstance(body, dict):
        raise PingError("bad_body", "ping body must be a JSON object")
    unknown = set(body) - _ALLOWED_KEYS
    if unknown:
        raise PingError("bad_body", "ping body has unknown fields")
    rtype, rid, version = body.get("resource_type"), body.get("resource_id"), body.get("version")
    if rtype is not None and (not isinstance(rtype, str) or not TYPE_RE.match(rtype)):
        raise PingError("bad_resource_type", "resource_type is not a FHIR resource type")
    if rid is not None and (not isinstance(rid, str) or not ID_RE.match(rid)):
        raise PingError("bad_resource_id", "resource_id is not a valid FHIR id")
    if rid is not None and rtype is None:
        raise PingError("bad_body", "resource_id needs resource_type")
    if version is not None and (not isinstance(version, str) or not ID_RE.match(version)):
        raise PingError("bad_version", "version is not a valid FHIR id")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 200):
        raise PingError("bad_body", "reason must be a short string")
    return ChangeEvent(
        patient_id=patient_id, source=SOURCE_PING, resource_type=rtype, resource_id=rid, version=version
    )

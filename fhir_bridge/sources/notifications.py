"""The Flask blueprint that receives R4 rest-hook notifications (the only Flask code in ``sources``).

HAPI calls, relative to the Subscription's ``channel.endpoint``:

* ``PUT /{Type}/{id}`` with the resource (``payload`` set): created or updated;
* ``DELETE /{Type}/{id}`` (with HAPI's send-delete extension): deleted;
* ``POST`` on the endpoint itself with an empty body (no ``payload``): "something matched".

Every call must carry the shared secret in ``X-BBDirect-Secret`` (compared in constant time). The resource is
shape-checked and must match the URL; its patient is read from the compartment reference. The answer is 200
once ``on_change`` accepted the event, so the server retries a notification we could not take.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from fhir_bridge.fhir import shapes
from fhir_bridge.fhir.errors import FhirError, FhirInvalidResponse
from fhir_bridge.sources.compartment import patient_of
from fhir_bridge.sources.events import SOURCE_SUBSCRIPTION, ChangeEvent
from fhir_bridge.sources.subscription import SECRET_HEADER

log = logging.getLogger(__name__)

#: A single resource notification; anything larger is refused before parsing.
MAX_BODY_BYTES = 5 * 2**20


def notifications_blueprint(
    on_change: Callable[[ChangeEvent], None],
    secret: str,
    *,
    resolver: Callable[[str, str], str | None] | None = None,
    on_wakeup: Callable[[], None] | None = None,
    base_url: str | None = None,
    name: str = "fhir_notifications",
) -> Blueprint:
    """Build the blueprint; register it with ``url_prefix`` = the path of the Subscription endpoint.

    ``resolver(type, id) -> patient id`` handles notifications without a body (deletions):
    ``SubscriptionManager.resolve_patient`` is the usual one. ``on_wakeup()`` is called for an empty POST,
    which names no resource (e.g. trigger a poll). ``base_url`` lets absolute references to our FHIR server
    count as local.
    """
    if not secret:
        raise ValueError("a notification endpoint needs a secret")
    expected = secret.encode()
    bp = Blueprint(name, __name__)

    def _authorised() -> bool:
        given = request.headers.get(SECRET_HEADER, "").encode()
        return hmac.compare_digest(given, expected)

    def _problem(status: int, code: str) -> tuple[Response, int]:
        return jsonify(error=code), status

    @bp.before_request
    def _guard() -> Any:
        if not _authorised():
            log.warning("rest-hook notification with a missing or wrong secret refused")
            return _problem(401, "bad_secret")
        # Also bounds chunked bodies (no Content-Length): they are never read past the cap.
        request.max_content_length = MAX_BODY_BYTES
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _problem(413, "too_large")
        return None

    def _ok() -> Response:
        # An empty 200: HAPI's rest-hook client parses any body as a FHIR resource and treats a non-FHIR
        # body as a failed delivery (and re-delivers it).
        return Response(status=200)

    def _deliver(event: ChangeEvent) -> Response:
        on_change(event)
        return _ok()

    def _resolve(rtype: str, rid: str) -> str | None:
        if resolver is None:
            return None
        try:
            return resolver(rtype, rid)
        except FhirError as exc:
            log.info("could not resolve the patient of a notified %s (%s)", rtype, exc.code)
            return None

    def wakeup() -> Any:
        if on_wakeup is not None:
            on_wakeup()
        return _ok()

    def resource(rtype: str, rid: str) -> Any:
        if not shapes.TYPE_RE.match(rtype) or not shapes.ID_RE.match(rid):
            return _problem(400, "bad_path")
        version = None
        body = request.get_data(cache=False)  # read once; size capped in _guard
        if len(body) >= MAX_BODY_BYTES:  # a chunked body is cut at the cap, not refused: refuse it here
            return _problem(413, "too_large")
        if request.method == "DELETE" or not body.strip():
            patient_id = _resolve(rtype, rid)
        else:
            try:
                payload = shapes.check_resource(json.loads(body))
            except (FhirInvalidResponse, ValueError):
                return _problem(400, "bad_resource")
            if payload["resourceType"] != rtype or payload["id"] != rid:
                return _problem(400, "resource_does_not_match_url")
            patient_id = patient_of(payload, base_url)
            meta = payload.get("meta") or {}
            version = meta.get("versionId") if isinstance(meta.get("versionId"), str) else None
        if patient_id is None:
            # Not about a local patient (e.g. a Practitioner): nothing to send, but the server must not retry.
            log.debug("notified %s names no local patient; ignored", rtype)
            return _ok()
        return _deliver(
            ChangeEvent(
                patient_id=patient_id,
                source=SOURCE_SUBSCRIPTION,
                resource_type=rtype,
                resource_id=rid,
                version=version,
            )
        )

    bp.add_url_rule("", "wakeup", wakeup, methods=["POST"], strict_slashes=False)
    bp.add_url_rule("/<rtype>/<rid>", "resource", resource, methods=["PUT", "POST", "DELETE"])
    return bp

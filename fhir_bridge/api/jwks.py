"""``GET /.well-known/jwks.json``: the public key set the EHR registers for our SMART Backend Services client.

Why served (and not only printed): the OpenEMR module registers the sidecar's backend client when an
administrator presses Enable, and fetches this document server-to-server for the client's ``jwks``; an EHR
may also register it as ``jwks_uri`` (SMART App Launch 2.x, Backend Services §Registering a client: the
client's public keys SHALL be made available as a JWK Set, by URL or by value). Public halves only, no
authentication: it is public by design. The key is the configured one, or the one generated once into the
data directory, so the registered set stays valid across restarts. ``bbdirect fhir jwks`` prints the same.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify

from fhir_bridge.fhir.auth import jwks_from_settings

log = logging.getLogger(__name__)

jwks = Blueprint("bbdirect_jwks", __name__)

PATH = "/.well-known/jwks.json"


def _error(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "field": None}})
    response.status_code = status
    return response


@jwks.get(PATH)
def public_jwks() -> Response:

    settings = current_app.extensions["bbdirect"].settings
    if settings.fhir_auth != "smart":
        return _error(404, "no_backend_client", "This sidecar does not use SMART Backend Services.")
    try:
        document = jwks_from_settings(settings)
    except (OSError, ValueError) as exc:
        log.error("the SMART signing key cannot be loaded: %s", type(exc).__name__)  # never the key or path
        return _error(500, "bad_key_file", "The SMART signing key cannot be loaded (fhir.private_key_file).")
    response = jsonify(document)
    response.headers["Cache-Control"] = "public, max-age=300"
    response.mimetype = "application/jwk-set+json"
    return response

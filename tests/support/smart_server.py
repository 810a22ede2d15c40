"""A small SMART Backend Services authorization server + protected FHIR endpoint, built on Authlib.

It is the real peer for ``fhir_bridge.fhir.auth.SmartBackendAuth``: Authlib's ``AuthorizationServer`` runs the
``client_credentials`` grant and verifies the ``private_key_jwt`` client assertion (RFC 7523) against the JWKS
the client registered; a tiny protected ``/fhir`` answers only with a token this server issued. Tests register
clients, count token requests and revoke tokens to see the client's cache and re-authentication at work.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import Flask, jsonify, request
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.serving import make_server

from tests.support.services import free_port

PRIVATE_KEY_JWT = "private_key_jwt"


@dataclass
class RegisteredClient(ClientMixin):
    client_id: str
    jwks: dict[str, Any]
    scope: str = "system/*.read"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == PRIVATE_KEY_JWT

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _ClientAssertion(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, token_url: str):
        super().__init__(validate_jti=True)
        self._token_url = token_url
        self._seen: set[str] = set()

    def get_audiences(self) -> list[str]:
        return [self._token_url]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        if jti in self._seen:
            return False
        self._seen.add(jti)
        return True

    def resolve_client_public_key(self, client: RegisteredClient) -> KeySet:
        return KeySet.import_key_set(client.jwks)

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        # SMART Backend Services names RS384 and ES384; accept exactly those.
        try:
            token = jose_jwt.decode(assertion, resolve_key, algorithms=["RS384", "ES384"])
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from exc
        self.verify_claims(token.claims)
        return token.claims


class _ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [PRIVATE_KEY_JWT]


@dataclass
class SmartServer:
    """Handle to the running server."""

    base: str
    clients: dict[str, RegisteredClient] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (epoch seconds)
    token_requests: int = 0
    fhir_requests: int = 0
    expires_in: int = 3600
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def token_url(self) -> str:
        return f"{self.base}/token"

    @property
    def fhir_base(self) -> str:
        return f"{self.base}/fhir"

    def register(self, client_id: str, jwks: dict[str, Any], scope: str = "system/*.read") -> None:
        self.clients[client_id] = RegisteredClient(client_id, jwks, scope)

    def revoke_all(self) -> None:
        with self.lock:
            self.tokens.clear()


def start_smart_server() -> tuple[SmartServer, Any]:
    port = free_port()
    state = SmartServer(base=f"http://127.0.0.1:{port}")
    app = Flask("smart-test-server")
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": 3600}

    def save_token(token: dict[str, Any], req: Any) -> None:
        with state.lock:
            state.tokens[token["access_token"]] = time.time() + int(token.get("expires_in", 3600))

    server = AuthorizationServer(app, query_client=state.clients.get, save_token=save_token)
    server.register_grant(_ClientCredentials)
    server.register_client_auth_method(PRIVATE_KEY_JWT, _ClientAssertion(state.token_url))

    def generate_token(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "access_token": secrets.token_urlsafe(32),
            "expires_in": state.expires_in,
            # What the client may have of what it asked for (as real servers do: OpenEMR trims silently).
            "scope": kwargs["client"].get_allowed_scope(kwargs.get("scope") or "")
            if kwargs.get("client")
            else "",
        }

    server.register_token_generator("default", generate_token)

    @app.post("/token")
    def token() -> Any:
        with state.lock:
            state.token_requests += 1
        return server.create_token_response()

    @app.get("/fhir/.well-known/smart-configuration")
    def smart_configuration() -> Any:
        return jsonify(
            token_endpoint=state.token_url,
            token_endpoint_auth_methods_supported=[PRIVATE_KEY_JWT],
            token_endpoint_auth_signing_alg_values_supported=["RS384", "ES384"],
            grant_types_supported=["client_credentials"],
        )

    @app.get("/legacy/metadata")
    def legacy_metadata() -> Any:
        """A server without .well-known/smart-configuration: the token URL only in the CapabilityStatement."""
        oauth = {
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": state.token_url}],
        }
        return jsonify(
            resourceType="CapabilityStatement",
            fhirVersion="4.0.1",
            rest=[{"mode": "server", "security": {"extension": [oauth]}}],
        )

    @app.get("/fhir/Patient/<pid>")
    @app.get("/legacy/Patient/<pid>")
    def patient(pid: str) -> Any:
        header = request.headers.get("Authorization", "")
        with state.lock:
            state.fhir_requests += 1
            expiry = state.tokens.get(header.removeprefix("Bearer "), 0.0)
        if not header.startswith("Bearer ") or expiry < time.time():
            return jsonify(
                resourceType="OperationOutcome", issue=[{"severity": "error", "code": "login"}]
            ), 401
        return jsonify(resourceType="Patient", id=pid)

    http = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True, name="smart-server").start()
    return state, http

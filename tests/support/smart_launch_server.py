"""A small SMART App Launch 2.x authorization server + FHIR proxy for the tests, built on Authlib.

No standards-conformant SMART server can run here (OpenEMR needs PHP + MariaDB + Docker; the SMART sandbox is
remote), so the web tests need their own. This one does only what the SMART App Launch IG 2.x asks of a
server, and is itself checked with the official SMART client library (``fhirclient``) in
``tests/integration/test_smart_server.py`` before the sidecar is tested against it:

* discovery: ``{fhir}/.well-known/smart-configuration`` (SMART 2.x §Conformance) and the
  ``oauth-uris`` extension in ``{fhir}/metadata`` (what ``fhirclient`` reads);
* authorization code grant with **PKCE S256 required** (SMART 2.x §App Protection: "servers SHALL ... support
  and require S256"), ``state`` echoed, ``aud`` checked against the FHIR base;
* EHR launch: the simulated EHR chart page (``/ehr/chart``) mints a ``launch`` value bound to a patient and
  user and opens the app with ``iss`` + ``launch``; standalone ``launch/patient`` binds the logged-in patient;
* scopes: per-resource v1 (``patient/Observation.read``) and v2 (``patient/Observation.rs``) scopes; like
  OpenEMR, **wildcards are refused** (``invalid_scope``);
* token response with ``patient`` and an ``id_token`` (RS256) carrying ``fhirUser``;
* a FHIR proxy in front of the real FHIR server (HAPI) that enforces the token: scope per resource type and, for
  ``patient/`` scopes, the patient compartment (a patient token cannot read another patient).

A login page with Allow / Deny stands in for the EHR's or portal's own login and consent screen.
"""

from __future__ import annotations

import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import requests
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify, request
from markupsafe import escape
from werkzeug.serving import make_server

from tests.support.services import free_port

#: Resource types the server grants scopes for (the OpenEMR list, see shared/docs/openemr.md §2).
RESOURCE_TYPES = (
    "AllergyIntolerance CarePlan CareTeam Condition Device DiagnosticReport DocumentReference Encounter Goal "
    "Immunization Location Medication MedicationRequest Observation Organization Patient Practitioner "
    "Procedure Provenance Binary"
).split()
CONTEXT_SCOPES = ("openid", "fhirUser", "launch", "launch/patient", "online_access", "offline_access")


@dataclass
class User:
    username: str
    password: str
    fhir_user: str  # "Patient/123" or "Practitioner/abc"
    name: str = "Test User"

    @property
    def patient_id(self) -> str | None:
        kind, _, ident = self.fhir_user.partition("/")
        return ident if kind == "Patient" else None


@dataclass
class Client:
    client_id: str
    redirect_uris: list[str]
    client_secret: str | None = None
    #: "user" (EHR launch by staff), "patient" (standalone patient launch) or None (either), as OpenEMR
    #: registers a user-role and a patient-role client: each is refused the other's scopes and users.
    role: str | None = None

    def refuses_scopes(self, scopes: list[str]) -> bool:
        if self.role == "user":
            return "launch/patient" in scopes or any(s.startswith("patient/") for s in scopes)
        if self.role == "patient":
            return "launch" in scopes or any(s.startswith("user/") for s in scopes)
        return False

    def refuses_user(self, user: User) -> bool:
        return (self.role == "patient") != bool(user.patient_id) if self.role else False

    # --- authlib ClientMixin ---------------------------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if _scope_allowed(s))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client_secret is None:
            return method == "none"
        return method in {"client_secret_basic", "client_secret_post"}

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    code_challenge: str
    code_challenge_method: str
    context: dict[str, Any]
    nonce: str | None = None
    expires_at: float = field(default_factory=lambda: time.time() + 120)

    # --- authlib AuthorizationCodeMixin -------------------------------------------------------------------
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(time.time())

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Grant:
    """What an access token allows: read by the FHIR proxy."""

    scope: set[str]
    user: User
    patient: str | None
    expires_at: float


def _scope_allowed(scope: str) -> bool:
    if scope in CONTEXT_SCOPES:
        return True
    level, _, rest = scope.partition("/")
    rtype, _, perm = rest.partition(".")
    return level in {"patient", "user"} and rtype in RESOURCE_TYPES and perm in {"read", "rs", "r", "s"}


def _permits(grant: Grant, rtype: str) -> str | None:
    """The scope level ("patient" / "user") that lets this token read ``rtype``, or None."""
    for level in ("user", "patient"):
        for perm in ("read", "rs", "r"):
            if f"{level}/{rtype}.{perm}" in grant.scope:
                return level
    return None


class SmartServer:
    """The authorization server, the simulated EHR chart and the FHIR proxy, on one loopback port."""

    def __init__(self, upstream_fhir: str, token_lifetime: int = 3600):
        self.upstream = upstream_fhir.rstrip("/")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.fhir_base = f"{self.base_url}/fhir"
        #: A FHIR endpoint that is not SMART-enabled (no smart-configuration, no security in metadata).
        self.plain_fhir_base = f"{self.base_url}/plain/fhir"
        self.token_lifetime = token_lifetime
        self.users: dict[str, User] = {}
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthCode] = {}
        self.tokens: dict[str, Grant] = {}
        self.launches: dict[str, dict[str, Any]] = {}
        #: Every authorize request's parameters (the tests assert on PKCE, state, scopes).
        self.authorize_requests: list[dict[str, str]] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(4)
        self.app = self._build_app()
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- set-up --------------------------------------------------------------------------------------------
    def add_user(self, username: str, password: str, fhir_user: str, name: str = "Test User") -> User:
        user = User(username, password, fhir_user, name)
        self.users[username] = user
        return user

    def add_client(
        self,
        client_id: str,
        redirect_uris: list[str],
        client_secret: str | None = None,
        role: str | None = None,
    ) -> Client:
        client = Client(client_id, redirect_uris, client_secret, role)
        self.clients[client_id] = client
        return client

    def new_launch(self, patient: str, username: str) -> str:
        """An opaque EHR launch value bound to a patient and the clinician using the chart."""
        launch = secrets.token_urlsafe(16)
        self.launches[launch] = {"patient": patient, "username": username}
        return launch

    def start(self) -> SmartServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def expire_all_tokens(self) -> None:
        for grant in self.tokens.values():
            grant.expires_at = 0

    # --- the Flask app -------------------------------------------------------------------------------------
    def _build_app(self) -> Flask:
        app = Flask("smart_server")
        app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"authorization_code": self.token_lifetime}
        smart = self

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

            def save_authorization_code(self, code: str, req) -> None:
                data = req.payload.data
                smart.codes[code] = AuthCode(
                    code=code,
                    client_id=req.client.client_id,
                    redirect_uri=data.get("redirect_uri", ""),
                    scope=req.client.get_allowed_scope(data.get("scope", "")),
                    user=req.user,
                    code_challenge=data.get("code_challenge", ""),
                    code_challenge_method=data.get("code_challenge_method", ""),
                    context=smart._context(req.user, data),
                    nonce=data.get("nonce"),
                )

            def query_authorization_code(self, code: str, client: Client) -> AuthCode | None:
                item = smart.codes.get(code)
                if item and item.client_id == client.client_id and item.expires_at > time.time():
                    return item
                return None

            def delete_authorization_code(self, authorization_code: AuthCode) -> None:
                smart.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: AuthCode) -> User:
                return authorization_code.user

        class S256Only(CodeChallenge):
            # SMART 2.x §App Protection: S256 is the only method; "plain" SHALL NOT be supported.
            SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
            DEFAULT_CODE_CHALLENGE_METHOD = "S256"

            def get_authorization_code_challenge(self, authorization_code: AuthCode) -> str:
                return authorization_code.code_challenge

            def get_authorization_code_challenge_method(self, authorization_code: AuthCode) -> str:
                return authorization_code.code_challenge_method

        private_pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

        class IdToken(OpenIDCode):
            def resolve_client_private_key(self, client: Client):
                from joserfc.jwk import RSAKey

                return RSAKey.import_key(private_pem, {"kid": smart._kid})

            def get_client_algorithm(self, client: Client) -> str:
                return "RS256"

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return {"iss": smart.base_url, "aud": [client.client_id], "exp": int(time.time()) + 600}

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": smart._kid}

            def exists_nonce(self, nonce: str, req) -> bool:
                return False

            def generate_user_info(self, user: User, scope: str) -> UserInfo:
                info = UserInfo(sub=user.username, name=user.name)
                if "fhirUser" in scope.split():
                    info["fhirUser"] = f"{smart.fhir_base}/{user.fhir_user}"
                return info

        def save_token(token: dict[str, Any], req) -> None:
            code = req.authorization_code
            context = code.context if code else {}
            smart.tokens[token["access_token"]] = Grant(
                scope=set(token.get("scope", "").split()),
                user=req.user,
                patient=context.get("patient"),
                expires_at=time.time() + int(token.get("expires_in", smart.token_lifetime)),
            )

        server = AuthorizationServer(
            app, query_client=lambda cid: smart.clients.get(cid), save_token=save_token
        )

        def add_context(grant, response) -> None:
            # SMART 2.x §Launch context: the token response carries the patient in context.
            _, token, _ = response
            code = grant.request.authorization_code
            for key, value in (code.context if code else {}).items():
                token[key] = value
            token.pop("refresh_token", None)

        class SmartCodeGrant(CodeGrant):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.register_hook("after_create_token_response", add_context)

        server.register_grant(SmartCodeGrant, [S256Only(required=True), IdToken(require_nonce=False)])

        @app.get("/fhir/.well-known/smart-configuration")
        def smart_configuration():
            return jsonify(smart.smart_configuration())

        @app.get("/.well-known/jwks.json")
        def jwks():
            from joserfc.jwk import RSAKey

            key = RSAKey.import_key(self._key.public_key())
            data = key.as_dict(private=False)
            data.update({"kid": smart._kid, "use": "sig", "alg": "RS256"})
            return jsonify({"keys": [data]})

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize():
            params = request.values.to_dict()
            if request.method == "GET":
                smart.authorize_requests.append(params)
            try:
                smart._check_smart_params(params)
                grant = server.get_consent_grant(end_user=None)
            except OAuth2Error as error:
                return _error_page(error.error, error.description or ""), 400
            if request.method == "GET":
                return _login_page(grant.client.client_id, params.get("scope", ""))
            if request.form.get("decision") != "allow":
                return server.create_authorization_response(grant_user=None)
            user = smart.users.get(request.form.get("username", ""))
            if user is None or not secrets.compare_digest(user.password, request.form.get("password", "")):
                return _login_page(
                    grant.client.client_id, params.get("scope", ""), "Wrong user name or password"
                )
            if grant.client.refuses_user(user):
                return _login_page(
                    grant.client.client_id,
                    params.get("scope", ""),
                    "This app is not for your kind of account",
                )
            return server.create_authorization_response(grant_user=user)

        @app.post("/token")
        def token():
            return server.create_token_response()

        @app.get("/ehr/chart")
        def ehr_chart():
            """The EHR's patient chart: the clinician clicks the app to start an EHR launch."""
            patient = request.args["patient"]
            username = request.args["user"]
            app_launch = request.args["app"]
            launch = smart.new_launch(patient, username)
            query = urllib.parse.urlencode({"iss": smart.fhir_base, "launch": launch})
            return (
                '<!doctype html><link rel=icon href="data:,"><title>EHR chart</title><h1>Patient chart</h1>'
                f'<a id="launch-app" href="{escape(app_launch)}?{escape(query)}">Blue Button Direct</a>'
            )

        @app.get("/plain/fhir/metadata")
        def plain_metadata():
            return jsonify(
                {
                    "resourceType": "CapabilityStatement",
                    "status": "active",
                    "kind": "instance",
                    "fhirVersion": "4.0.1",
                    "format": ["json"],
                    "rest": [{"mode": "server"}],
                }
            )

        @app.get("/fhir/metadata")
        def metadata():
            upstream = requests.get(
                f"{smart.upstream}/metadata", headers={"Accept": "application/fhir+json"}, timeout=30
            )
            body = upstream.json()
            for rest in body.get("rest", []):
                rest["security"] = smart.security_block()
            return Response(smart._rewrite(body), content_type="application/fhir+json")

        @app.get("/fhir/<path:path>")
        def fhir_proxy(path: str):
            return smart._proxy(path)

        return app

    # --- SMART pieces --------------------------------------------------------------------------------------
    def smart_configuration(self) -> dict[str, Any]:
        scopes = list(CONTEXT_SCOPES)
        for rtype in RESOURCE_TYPES:
            scopes += [
                f"patient/{rtype}.read",
                f"patient/{rtype}.rs",
                f"user/{rtype}.read",
                f"user/{rtype}.rs",
            ]
        return {
            "issuer": self.base_url,
            "jwks_uri": f"{self.base_url}/.well-known/jwks.json",
            "authorization_endpoint": f"{self.base_url}/authorize",
            "token_endpoint": f"{self.base_url}/token",
            "grant_types_supported": ["authorization_code"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "scopes_supported": scopes,
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": [
                "launch-ehr",
                "launch-standalone",
                "client-public",
                "client-confidential-symmetric",
                "sso-openid-connect",
                "context-ehr-patient",
                "context-standalone-patient",
                "permission-patient",
                "permission-user",
                "permission-v1",
                "permission-v2",
            ],
        }

    def security_block(self) -> dict[str, Any]:
        return {
            "service": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                            "code": "SMART-on-FHIR",
                        }
                    ]
                }
            ],
            "extension": [
                {
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        {"url": "authorize", "valueUri": f"{self.base_url}/authorize"},
                        {"url": "token", "valueUri": f"{self.base_url}/token"},
                    ],
                }
            ],
        }

    def _check_smart_params(self, params: dict[str, str]) -> None:
        """The SMART-specific checks Authlib does not do on its own."""
        scopes = params.get("scope", "").split()
        if any("*" in s for s in scopes):
            raise InvalidScopeError("wildcard scopes are not supported")  # like OpenEMR (issue #7775)
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            raise InvalidRequestError("PKCE with code_challenge_method=S256 is required")
        if params.get("aud", "").rstrip("/") != self.fhir_base:
            raise InvalidRequestError("aud must be this server's FHIR base URL")
        if not params.get("state"):
            raise InvalidRequestError("state is required")
        client = self.clients.get(params.get("client_id", ""))
        if client is not None and client.refuses_scopes(scopes):
            raise InvalidScopeError(f"scopes not allowed for a {client.role}-role client")
        if "launch" in scopes and params.get("launch") not in self.launches:
            raise InvalidRequestError("unknown or missing launch")

    def _context(self, user: User, data: dict[str, str]) -> dict[str, Any]:
        scopes = data.get("scope", "").split()
        context: dict[str, Any] = {}
        if "launch" in scopes:
            context["patient"] = self.launches[data["launch"]]["patient"]
            context["need_patient_banner"] = False
        elif "launch/patient" in scopes and user.patient_id:
            context["patient"] = user.patient_id
            context["need_patient_banner"] = True
        return context

    def _proxy(self, path: str) -> Response:
        header = request.headers.get("Authorization", "")
        grant = (
            self.tokens.get(header.removeprefix("Bearer ").strip()) if header.startswith("Bearer ") else None
        )
        if grant is None or grant.expires_at < time.time():
            return _outcome(401, "login", "missing, unknown or expired access token")
        parts = path.split("/")
        rtype = parts[0]
        level = _permits(grant, rtype)
        if level is None:
            return _outcome(403, "forbidden", f"no scope allows reading {rtype}")
        if level == "patient" and not self._in_compartment(grant, rtype, parts):
            return _outcome(403, "forbidden", "outside the patient compartment of this token")
        upstream = requests.get(
            f"{self.upstream}/{path}",
            params=list(request.args.items(multi=True)),
            headers={"Accept": "application/fhir+json"},
            timeout=30,
        )
        return Response(
            self._rewrite(upstream.json()), status=upstream.status_code, content_type="application/fhir+json"
        )

    def _in_compartment(self, grant: Grant, rtype: str, parts: list[str]) -> bool:
        if not grant.patient:
            return False
        if rtype == "Patient":
            if len(parts) > 1:
                return parts[1] == grant.patient
            return request.args.get("_id") == grant.patient
        if len(parts) > 1:
            return False  # a direct read of another resource: refused (this small server keeps no compartment index)
        wanted = {grant.patient, f"Patient/{grant.patient}"}
        return request.args.get("patient") in wanted or request.args.get("subject") in wanted

    def _rewrite(self, body: Any) -> str:
        import json

        return json.dumps(body).replace(self.upstream, self.fhir_base)


def _outcome(status: int, code: str, text: str) -> Response:
    import json

    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    return Response(json.dumps(body), status=status, content_type="application/fhir+json")


def _login_page(client_id: str, scope: str, error: str = "") -> str:
    err = f'<p role="alert" id="login-error">{escape(error)}</p>' if error else ""
    return f"""<!doctype html><html lang="en"><link rel="icon" href="data:,"><title>Sign in</title>
<h1>Sign in to allow {escape(client_id)}</h1>{err}
<p>The app asks for: <span id="scopes">{escape(scope)}</span></p>
<form method="post">
<label>User name <input name="username" id="username" autocomplete="username"></label>
<label>Password <input name="password" id="password" type="password"></label>
<button name="decision" value="allow" id="allow">Allow</button>
<button name="decision" value="deny" id="deny">Deny</button>
</form></html>"""


def _error_page(error: str, description: str) -> str:
    return f"<!doctype html><link rel=icon href=data:,><title>Error</title><h1>{escape(error)}</h1><p>{escape(description)}</p>"

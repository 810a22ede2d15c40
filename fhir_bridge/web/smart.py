"""SMART App Launch 2.x client: EHR launch (clinicians) and standalone patient launch (patients).

The flow (SMART App Launch 2.x, "App Launch: Launch and Authorization"):

1. launch: ``/smart/launch?iss=...&launch=...`` from the EHR, or ``/smart/start`` for a patient;
2. discovery: ``GET {iss}/.well-known/smart-configuration`` (§Conformance: servers SHALL serve it);
3. authorize redirect with ``response_type=code``, ``state``, ``aud={iss}``, ``launch`` (EHR launch only),
   per-resource scopes and PKCE ``code_challenge_method=S256`` (§App Protection: apps SHALL use S256);
4. callback: ``state`` must match (CSRF on the redirect), the code is exchanged with the ``code_verifier``;
5. the token response's ``patient`` decides whose record the pages show; the ``id_token`` (OpenID Connect,
   signature checked against the server's ``jwks_uri``) names the user (``fhirUser``).

Tokens stay in the server-side session (see :mod:`session_store`); the browser never sees them. Discovery,
PKCE and the token request are the ones SMART Backend Services uses too (:mod:`fhir_bridge.fhir.oauth`, on
Authlib); this module adds the launch's policy, the id_token check and the pages.
"""

from __future__ import annotations

import logging
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for

from fhir_bridge.errors import BridgeError
from fhir_bridge.fhir.oauth import get_json, pkce_pair, request_token, smart_configuration
from fhir_bridge.web.config import WebConfig

log = logging.getLogger(__name__)

bp = Blueprint("web_smart", __name__, template_folder="templates")


class SmartError(BridgeError):
    """A SMART launch could not complete. ``code`` selects the page shown; never contains tokens or PHI."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(code, code=code, detail=detail)


@dataclass(frozen=True)
class SmartConfiguration:
    authorization_endpoint: str
    token_endpoint: str
    issuer: str | None
    jwks_uri: str | None
    capabilities: frozenset[str]


def discover(iss: str, timeout: float = 10.0) -> SmartConfiguration:
    """Read ``{iss}/.well-known/smart-configuration``; a server without it (or without S256) is not usable."""
    try:
        data = smart_configuration(iss, timeout=timeout)
    except requests.RequestException:
        data = None
    if data is None:
        raise SmartError("not_smart")
    try:
        authorize, token = str(data["authorization_endpoint"]), str(data["token_endpoint"])
    except KeyError:
        raise SmartError("not_smart") from None
    # SMART 2.x §App Protection: "S256" SHALL be supported; an app SHALL NOT fall back to "plain".
    if "S256" not in (data.get("code_challenge_methods_supported") or []):
        raise SmartError("not_smart", "no PKCE S256")
    for endpoint in (authorize, token):
        if urllib.parse.urlsplit(endpoint).scheme not in {"https", "http"}:
            raise SmartError("not_smart")
    caps = data.get("capabilities") or []
    issuer, jwks_uri = oidc_issuer(data.get("issuer"), authorize, data.get("jwks_uri"), timeout)
    return SmartConfiguration(
        authorize, token, issuer, jwks_uri, frozenset(c for c in caps if isinstance(c, str))
    )


def oidc_issuer(
    declared: str | None, authorize: str, jwks_uri: str | None, timeout: float = 10.0
) -> tuple[str | None, str | None]:
    """The OpenID Connect issuer the id_token's ``iss`` must equal (OIDC Core §3.1.3.7 step 2), and its keys.

    SMART 2.x §Metadata: ``issuer`` in smart-configuration is the OpenID Connect issuer. OpenEMR (7.0.3 and
    8.1) puts its FHIR base there, while its id_tokens carry the authorization server's issuer
    (``…/oauth2/default``, what its own ``openid-configuration`` says). So the issuer is confirmed by
    discovery (OIDC Discovery §4.3: a configuration's ``issuer`` MUST equal the URL it was fetched from): the
    declared one first, then the authorization endpoint's base; a candidate counts only if its configuration
    names the same ``jwks_uri`` (the same keys, so the same authority). Nothing confirmed: the declared value.
    OpenEMR 7.0.3's smart-configuration has neither ``issuer`` nor ``jwks_uri`` (both REQUIRED with
    ``sso-openid-connect``): the authorization server's own discovery document then gives both.
    """
    candidates = [declared] if declared else []
    base = authorize.rsplit("/", 1)[0]
    if base and base not in candidates:
        candidates.append(base)
    for candidate in candidates:
        try:
            found = get_json(f"{candidate.rstrip('/')}/.well-known/openid-configuration", timeout=timeout)
        except requests.RequestException:
            continue
        if (
            isinstance(found, dict)
            and found.get("issuer") == candidate
            and isinstance(found.get("jwks_uri"), str)
            and (jwks_uri is None or found["jwks_uri"] == jwks_uri)
        ):
            return candidate, found["jwks_uri"]
    return declared, jwks_uri


def authorize_url(
    conf: SmartConfiguration,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    aud: str,
    challenge: str,
    launch: str | None,
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "aud": aud,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if launch:
        params["launch"] = launch
    parts = urllib.parse.urlsplit(conf.authorization_endpoint)
    query = urllib.parse.urlencode([*urllib.parse.parse_qsl(parts.query), *params.items()])
    return urllib.parse.urlunsplit(parts._replace(query=query))


def exchange_code(
    pending: dict[str, Any], code: str, client: tuple[str, str], redirect_uri: str
) -> dict[str, Any]:
    """POST the code + verifier to the token endpoint as ``client`` = (id, secret); raises SmartError.

    A confidential client (with a secret) authenticates with HTTP Basic (``client_secret_basic``, RFC 6749
    §2.3.1), a public one names itself in the form (``none``); Authlib builds either."""
    client_id, client_secret = client
    try:
        answer = request_token(
            pending["token_endpoint"],
            client_id=client_id,
            client_secret=client_secret or None,
            auth_method="client_secret_basic" if client_secret else "none",
            timeout=15,
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=pending["verifier"],
        )
    except requests.RequestException:
        raise SmartError("token_failed") from None
    token = answer.body
    if answer.status != 200 or not token.get("access_token"):
        raise SmartError("token_failed", str(token.get("error", "")))
    return token


def fhir_user_of(token: dict[str, Any], pending: dict[str, Any], client_id: str) -> str | None:
    """``fhirUser`` from the id_token, once signature, issuer and audience check out (OIDC Core 3.1.3.7)."""
    id_token = token.get("id_token")
    if not id_token:
        return None
    jwks_uri = pending.get("jwks_uri")
    if not jwks_uri:
        raise SmartError("token_failed", "id_token without jwks_uri")
    try:
        key = id_token_key(jwt.PyJWKClient(jwks_uri, timeout=10).get_jwk_set().keys, id_token)
        claims = jwt.decode(
            id_token,
            key,
            algorithms=["RS256", "RS384", "ES256", "ES384"],
            audience=client_id,
            issuer=pending.get("issuer"),
            options={"verify_iss": bool(pending.get("issuer"))},
            leeway=60,
        )
    except jwt.PyJWTError as exc:
        raise SmartError("token_failed", f"id_token rejected: {type(exc).__name__}") from None
    value = claims.get("fhirUser")
    return str(value) if value else None


def id_token_key(keys: list[jwt.PyJWK], id_token: str) -> Any:
    """The server key that signed ``id_token``.

    OIDC Core §10.1.1: with several keys in the set the JOSE header MUST carry ``kid``; with one key it need
    not. OpenEMR (7.0.3 and 8.1) publishes a single RSA key without ``kid`` at ``/oauth2/default/jwk`` and
    signs without one, which PyJWT's own ``get_signing_key_from_jwt`` refuses. So: the key named by ``kid``
    when there is one, else the only signing key of the set; anything else is refused.
    """
    kid = jwt.get_unverified_header(id_token).get("kid")
    signing = [k for k in keys if getattr(k, "public_key_use", None) in (None, "sig")]
    if kid is not None:
        named = [k for k in signing if k.key_id == kid]
        if len(named) == 1:
            return named[0].key
        raise jwt.PyJWKClientError(f"no signing key with the id_token's kid ({len(named)} found)")
    if len(signing) == 1:
        return signing[0].key
    raise jwt.PyJWKClientError("id_token has no kid and the server publishes several signing keys")


#: ``fhirUser`` types that may use the clinician pages (SMART 2.x §fhirUser: Practitioner, PractitionerRole,
#: Patient, RelatedPerson, Person); everyone else has no clinician role here.
STAFF = frozenset({"Practitioner", "PractitionerRole"})
PATIENT_SIDE = frozenset({"Patient", "RelatedPerson"})


def role_of(fhir_user: str | None, flow: str) -> str:
    """``clinician``, ``patient`` or ``none``, from the *verified* id_token's ``fhirUser`` only.

    A standalone launch is the patient's own. An EHR launch gives the clinician pages only to a user the EHR
    names as a Practitioner or PractitionerRole: no id_token, or a ``Person``/unknown type, is not enough
    (being inside the EHR proves nothing about the role). OpenEMR names a user ``Practitioner`` only when the
    user has an NPI, otherwise ``Person``.
    """
    if flow != "ehr":
        return "patient"
    kind = (fhir_user or "").rstrip("/").split("/")[-2:-1]
    if kind and kind[0] in STAFF:
        return "clinician"
    if kind and kind[0] in PATIENT_SIDE:
        return "patient"
    return "none"


# --- routes ---------------------------------------------------------------------------------------------
def _config() -> WebConfig:
    config: WebConfig = current_app.extensions["bbdirect.web.config"]
    return config


def _redirect_uri() -> str:
    config = _config()
    if config.public_url:
        return config.public_url.rstrip("/") + url_for("web_smart.callback")
    return url_for("web_smart.callback", _external=True)


def _begin(iss: str, flow: str, launch: str | None) -> Any:
    config = _config()
    try:
        conf = discover(iss)
    except SmartError as exc:
        return error_page(exc.code, 502)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    role = "patient" if flow == "standalone" else "clinician"
    client_id, _ = config.client_for(flow)
    session.clear()
    session["smart_pending"] = {
        "state": state,
        "verifier": verifier,
        "iss": iss,
        "flow": flow,
        "token_endpoint": conf.token_endpoint,
        "jwks_uri": conf.jwks_uri,
        "issuer": conf.issuer,
        "started": time.time(),
    }
    return redirect(
        authorize_url(
            conf,
            client_id=client_id,
            redirect_uri=_redirect_uri(),
            scope=config.scopes(role),
            state=state,
            aud=iss,
            challenge=challenge,
            launch=launch,
        )
    )


@bp.get("/smart/launch")
def launch() -> Any:
    """EHR launch: the EHR opens this with ``iss`` and ``launch``."""
    iss = request.args.get("iss", "").rstrip("/")
    launch_value = request.args.get("launch", "")
    if not iss or not launch_value:
        return error_page("bad_launch", 400)
    # Only configured EHRs: an arbitrary iss would make us send our client credentials to anyone.
    if iss not in _config().issuers():
        return error_page("unknown_iss", 400)
    return _begin(iss, "ehr", launch_value)


@bp.get("/smart/start")
def start() -> Any:
    """Standalone patient launch against the configured patient-portal FHIR server."""
    iss = _config().smart_iss.rstrip("/")
    if not iss:
        return error_page("not_configured", 503)
    return _begin(iss, "standalone", None)


@bp.get("/smart/callback")
def callback() -> Any:
    pending = session.get("smart_pending")
    if not pending:
        return error_page("expired", 400)
    if not secrets.compare_digest(str(request.args.get("state", "")), str(pending["state"])):
        return error_page("bad_state", 400)
    if request.args.get("error"):
        session.pop("smart_pending", None)
        code = "denied" if request.args["error"] == "access_denied" else "auth_error"
        return error_page(code, 403)
    grant = request.args.get("code")
    if not grant:
        return error_page("auth_error", 400)
    config = _config()
    try:
        # The client that started this launch finishes it (the secret never leaves the server).
        client = config.client_for(pending["flow"])
        token = exchange_code(pending, grant, client, _redirect_uri())
        fhir_user = fhir_user_of(token, pending, client[0])
    except SmartError as exc:
        log.warning("SMART token exchange failed: %s %s", exc.code, exc.detail)
        return error_page(exc.code, 502)
    patient = token.get("patient")
    if not patient or not isinstance(patient, str):
        return error_page("no_patient", 403)
    role = role_of(fhir_user, pending["flow"])
    if role == "none":
        session.pop("smart_pending", None)
        log.warning("EHR launch refused: fhirUser is not a Practitioner or PractitionerRole")
        return error_page("not_staff", 403)
    session.clear()
    current_app.session_interface.rotate(session)  # type: ignore[attr-defined]  # our ServerSessionInterface (web/session_store), typed as Flask's base
    session["smart"] = {
        "iss": pending["iss"],
        "access_token": token["access_token"],
        "patient": patient,
        "role": role,
        "fhir_user": fhir_user or "",
        "scope": token.get("scope", ""),
        "expires_at": time.time() + float(token.get("expires_in", 3600)),
    }
    session["csrf"] = secrets.token_urlsafe(32)
    return redirect(url_for("web_patient.home" if role == "patient" else "web_clinician.record"))


@bp.post("/smart/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("web_patient.landing"))


ERRORS = {
    "not_staff": (
        "Your account cannot use the clinician pages",
        "The health record system did not name you as a practitioner. Ask your administrator to link your "
        "account to a practitioner record (in OpenEMR: an NPI on your user).",
    ),
    "denied": (
        "You did not allow access",
        "Nothing was shared. To share your record, sign in again and choose Allow.",
    ),
    "expired": (
        "Your session has ended",
        "For your privacy we sign you out after a few minutes without activity. Please sign in again.",
    ),
    "not_smart": (
        "This health record system cannot sign you in here",
        "It does not support SMART on FHIR sign-in (or it is not answering). Ask your clinic for help.",
    ),
    "unknown_iss": (
        "Unknown health record system",
        "This app is not set up to work with the system that opened it. Ask your administrator.",
    ),
    "bad_launch": (
        "This page must be opened from a health record system",
        "Open the app from the patient's chart, or sign in from the start page.",
    ),
    "bad_state": ("Sign-in could not be completed", "The sign-in request did not match. Please start again."),
    "auth_error": (
        "Sign-in could not be completed",
        "The health record system reported a problem. Try again.",
    ),
    "token_failed": (
        "Sign-in could not be completed",
        "The health record system did not confirm the sign-in. Please start again.",
    ),
    "no_patient": (
        "No patient was selected",
        "The sign-in did not say whose record to use. Please start again.",
    ),
    "not_configured": (
        "Sign-in is not set up",
        "The administrator has not connected a health record system.",
    ),
    "forbidden": ("Not allowed", "This page is not available to you."),
    "not_found": ("Not found", "We could not find that item."),
    "csrf": ("Please try again", "The form had expired. We kept nothing; please fill it in again."),
}


def error_page(code: str, status: int) -> Any:
    title, text = ERRORS.get(code, ERRORS["auth_error"])
    return render_template("error.html", code=code, title=title, text=text), status


def current() -> dict[str, Any]:
    """The signed-in SMART context, or abort to the right page (expired session / not signed in)."""
    ctx: dict[str, Any] | None = session.get("smart")
    if not ctx:
        abort(401)
    if ctx.get("expires_at", 0) < time.time():  # the EHR's access token ran out: sign in again
        session.clear()
        abort(401, description="expired")
    return ctx

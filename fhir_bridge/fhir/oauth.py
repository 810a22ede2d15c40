"""The OAuth 2.0 / SMART client pieces both SMART clients of the sidecar share, built on Authlib.

Two clients talk to an authorization server: the browser launch (``fhir_bridge.web.smart``: authorization
code + PKCE) and SMART Backend Services (``fhir_bridge.fhir.auth``: ``client_credentials`` with a
``private_key_jwt`` assertion). What they have in common exists once, here:

* discovery: reading ``{base}/.well-known/smart-configuration`` (SMART App Launch 2.x §Discovery);
* PKCE (RFC 7636 §4.1-4.2): Authlib makes the verifier and its S256 challenge;
* the token request: Authlib's ``OAuth2Session.fetch_token`` builds the grant's form and the client
  authentication (``client_secret_basic``, ``none``, ``private_key_jwt``); the answer (status + JSON) is
  handed back unjudged, because each caller maps it to its own error codes and pages.

What stays ours, on purpose: the policy when a server's documents are missing or partial (OpenEMR's are) and
the error mapping. Nothing here logs a token, a secret or a key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.security import generate_token  # type: ignore[import-untyped]  # Authlib: no hints
from authlib.integrations.requests_client import (  # type: ignore[import-untyped]  # Authlib: no hints
    OAuth2Session,
    OAuthError,
)
from authlib.oauth2.rfc7523 import (  # type: ignore[import-untyped]  # Authlib: no hints
    PrivateKeyJWT,
    private_key_jwt_sign,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]  # no hints
from joserfc.jwk import ECKey, RSAKey

#: SMART App Launch 2.x §Discovery: the configuration document, relative to the FHIR base.
SMART_CONFIGURATION = ".well-known/smart-configuration"
#: Length of a PKCE code verifier (RFC 7636 §4.1: 43 to 128 unreserved characters; 64 letters and digits
#: carry ~380 bits).
VERIFIER_LENGTH = 64

#: Client authentication at the token endpoint: an Authlib method name or an Authlib auth-method object.
AuthMethod = str | Callable[..., Any]


def get_json(url: str, *, timeout: float, session: requests.Session | None = None) -> Any:
    """``GET url`` asking for JSON: the decoded body of a 200, else None (any status, or not JSON).

    Raises ``requests.RequestException`` when the server cannot be reached, so each caller decides whether
    that is an outage (Backend Services) or a server that is "not SMART" (the browser launch).
    """
    http = session or requests
    answer = http.get(url, headers={"Accept": "application/json"}, timeout=timeout)
    if answer.status_code != 200:
        return None
    try:
        return answer.json()
    except ValueError:
        return None


def smart_configuration(
    fhir_base: str, *, timeout: float, session: requests.Session | None = None
) -> dict[str, Any] | None:
    """``{fhir_base}/.well-known/smart-configuration`` as a JSON object, or None when the server has none.

    Raises ``requests.RequestException`` when the server cannot be reached (see :func:`get_json`)."""
    body = get_json(f"{fhir_base.rstrip('/')}/{SMART_CONFIGURATION}", timeout=timeout, session=session)
    return body if isinstance(body, dict) else None


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636 §4.1-4.2 (SMART 2.x §App Protection: S256 only)."""
    verifier = generate_token(VERIFIER_LENGTH)
    return verifier, create_s256_code_challenge(verifier)


def sign_assertion(
    key: RSAKey | ECKey,
    *,
    client_id: str,
    token_url: str,
    alg: str,
    issued_at: int,
    expires_at: int,
    header: dict[str, Any],
) -> str:
    """A ``private_key_jwt`` client assertion (RFC 7523 §3), signed by Authlib: ``iss`` = ``sub`` =
    ``client_id``, ``aud`` = ``token_url``, a fresh ``jti`` (servers reject replays), our ``iat``/``exp``."""
    assertion: str = private_key_jwt_sign(
        key,
        client_id=client_id,
        token_endpoint=token_url,
        alg=alg,
        issued_at=issued_at,
        expires_at=expires_at,
        header=header,
    )
    return assertion


class AssertionAuth(PrivateKeyJWT):
    """``private_key_jwt`` (RFC 7523 §2.2) whose assertion is made by ``sign(token_endpoint)``.

    Why not Authlib's own signing: SMART Backend Services wants the assertion's ``exp`` at most five minutes
    ahead and a ``kid`` (and optionally ``jku``) header; the caller signs with its clock and headers, and
    Authlib adds ``client_assertion_type`` and ``client_assertion`` to the token request.
    """

    def __init__(self, sign: Callable[[str], str]):
        super().__init__()
        self._sign = sign

    def sign(self, auth: Any, token_endpoint: str) -> str:
        return self._sign(token_endpoint)


@dataclass(frozen=True)
class TokenAnswer:
    """What the token endpoint said: its HTTP status and JSON object (``{}`` when the body is not one)."""

    status: int
    body: dict[str, Any]


def request_token(
    token_url: str,
    *,
    client_id: str,
    client_secret: str | None = None,
    auth_method: AuthMethod,
    timeout: float,
    **grant: Any,
) -> TokenAnswer:
    """POST a token request; Authlib builds the grant's form (``grant``: ``grant_type`` and its parameters)
    and authenticates the client with ``auth_method``. The answer comes back as is, for the caller to judge.

    Raises ``requests.RequestException`` when the endpoint cannot be reached.
    """
    client = OAuth2Session(client_id, client_secret, token_endpoint_auth_method=auth_method)
    answers: list[requests.Response] = []

    def keep(response: requests.Response) -> requests.Response:
        answers.append(response)
        return response

    client.register_compliance_hook("access_token_response", keep)
    try:
        # Authlib refuses error bodies (OAuthError), non-JSON bodies (ValueError) and 5xx (HTTPError) in its
        # own ways; all of them are answers we judge ourselves below.
        # Accept only: requests then sets the form's Content-Type as before Authlib (no charset parameter).
        client.fetch_token(token_url, timeout=timeout, headers={"Accept": "application/json"}, **grant)
    except (OAuthError, ValueError, requests.HTTPError):
        if not answers:
            raise
    finally:
        client.close()
    return TokenAnswer(answers[-1].status_code, _json_object(answers[-1]))


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}

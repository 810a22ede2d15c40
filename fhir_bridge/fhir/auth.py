"""Credentials for the FHIR server: none, a static bearer token, or SMART Backend Services.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html) is how an unattended
service like ours reads a record: an OAuth 2.0 ``client_credentials`` grant authenticated with a signed JWT
(``private_key_jwt``, RFC 7523) instead of a shared secret. The server registered our public key (``jwks()``
prints it; the sidecar serves it at ``/.well-known/jwks.json`` and ``bbdirect fhir jwks`` prints it); at
each token request we sign a short-lived assertion with the private key. Tokens are cached until shortly
before they expire and re-fetched on a 401. Neither the key nor any token is ever logged. The OAuth work
(discovery, the token request, signing the assertion) is Authlib's, shared with the browser launch in
:mod:`fhir_bridge.fhir.oauth`; the public JWK comes from joserfc, Authlib's JOSE layer.

Defaults chosen to work against OpenEMR (7.0.3 and 8.1) as well as any SMART server:

* the key is RSA and assertions are signed **RS384** (7.0.3 verifies RS384 only; ES384 and RS256 are refused),
  generated once into the sidecar's data directory when no key file is configured, so the JWKS an EHR
  registered stays valid across restarts (:func:`load_or_create_key`);
* the scopes are derived (``fhir_bridge.fhir.scopes``): one ``system/<Type>.read`` per type the gatherer
  reads, never ``system/*.read``, which OpenEMR refuses;
* the granted ``scope`` of the token response is kept, so the gatherer knows which types it may read and can
  refuse to build a record the token cannot fully see (:meth:`SmartBackendAuth.readable`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, RSAKey

from fhir_bridge.fhir import oauth
from fhir_bridge.fhir import scopes as smart_scopes
from fhir_bridge.fhir.capabilities import Capabilities
from fhir_bridge.fhir.errors import FhirAuthError, FhirInvalidResponse, FhirUnreachable

log = logging.getLogger(__name__)

#: SMART Backend Services: the assertion's ``exp`` is no more than five minutes in the future.
ASSERTION_LIFETIME_S = 300
SUPPORTED_ALGS = ("RS384", "ES384")
#: Where the sidecar keeps its generated signing key when ``fhir.private_key_file`` is empty (its data
#: directory, ``./var``; ``/var/lib/bbdirect/var`` in the container, a volume).
DEFAULT_KEY_FILE = "./var/fhir-client-key.pem"

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class Auth(Protocol):
    """Adds credentials to a FHIR request."""

    def headers(self) -> dict[str, str]:
        """Headers to add to the next request (may fetch a token)."""
        ...

    def invalidate(self) -> bool:
        """Forget cached credentials after a 401; True when asking again may help."""
        ...


class NoAuth:
    """An open server (e.g. the test HAPI): no credentials."""

    def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> bool:
        return False


class BearerAuth:
    """A static bearer token issued out of band (e.g. a long-lived integration token)."""

    def __init__(self, token: str):
        if not token or any(c in token for c in "\r\n"):
            raise ValueError("bearer token must be a non-empty single line")
        self._token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> bool:
        return False  # the same token will be refused again

    def __repr__(self) -> str:
        return "BearerAuth(***)"


class SmartBackendAuth:
    """SMART Backend Services ``client_credentials`` with a ``private_key_jwt`` assertion (RS384 or ES384).

    ``token_url`` may be left empty: it is then discovered from
    ``{fhir_base_url}/.well-known/smart-configuration``.
    ``kid`` defaults to the RFC 7638 thumbprint of the public key, the same value ``jwks()`` publishes.
    ``scopes`` empty (the default) = derived at the first token request from :data:`scopes.BACKEND_RESOURCES`,
    the CapabilityStatement and ``smart-configuration`` (:func:`scopes.derive_scopes`).
    """

    def __init__(
        self,
        client_id: str,
        private_key: bytes | str | SigningKey,
        *,
        token_url: str | None = None,
        fhir_base_url: str | None = None,
        scopes: str | None = None,
        kid: str | None = None,
        jku: str | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if not client_id:
            raise ValueError("client_id is required")
        if not token_url and not fhir_base_url:
            raise ValueError("token_url or fhir_base_url (for discovery) is required")
        self.client_id = client_id
        self._key = load_signing_key(private_key)
        self._jose_key = jose_key(self._key)
        self.alg = algorithm_for(self._key)
        self.public_jwk = public_jwk(self._key, alg=self.alg, kid=kid)
        self.kid = str(self.public_jwk["kid"])
        self.jku = jku
        self._scopes = scopes or None
        #: Scopes of the last token (the response's ``scope``, or what we asked for when it has none).
        self.granted_scopes: tuple[str, ...] | None = None
        self._smart_config: dict[str, Any] | None = None
        self.timeout = timeout
        self.session = session or requests.Session()
        self.clock = clock
        self._token_url = token_url
        self._fhir_base_url = fhir_base_url.rstrip("/") if fhir_base_url else None
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r}, alg={self.alg}, kid={self.kid!r})"

    # --- Auth protocol ---------------------------------------------------------------------------------
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}"}

    def invalidate(self) -> bool:
        with self._lock:
            self._token, self._expires_at = None, 0.0
        return True

    # --- tokens ----------------------------------------------------------------------------------------
    def access_token(self) -> str:
        """A valid access token, from the cache or freshly requested."""
        with self._lock:
            if self._token and self.clock() < self._expires_at:
                return self._token
            token, lifetime = self._request_token()
            # Renew a little early so a request never leaves with a token that expires in flight.
            self._token = token
            self._expires_at = self.clock() + max(0.0, lifetime - min(30.0, lifetime / 10))
            return token

    @property
    def token_url(self) -> str:
        if not self._token_url:
            self._token_url = self._discover_token_url()
        return self._token_url

    @property
    def scopes(self) -> str:
        """The scopes we ask for: configured, or derived once from what the server says it has."""
        if self._scopes is None:
            self._scopes = self._derive_scopes()
        return self._scopes

    def readable(self, resource_type: str) -> bool | None:
        """May our token read and search ``resource_type``? True: granted. False: we asked for it and the
        server did not grant it (a record built without it would be incomplete). None: we never asked (the
        type is not one this client reads). Fetches a token first if there is none yet."""
        if self.granted_scopes is None:
            self.access_token()
        granted = self.granted_scopes or ()
        if smart_scopes.allows_read(granted, resource_type):
            return True
        if smart_scopes.allows_read(self.scopes.split(), resource_type):
            return False
        return None

    def client_assertion(self, token_url: str | None = None) -> str:
        """The signed JWT that authenticates us at the token endpoint (SMART Backend Services §Protocol).

        Authlib (RFC 7523) signs it: ``iss`` = ``sub`` = our client id, ``aud`` = the token URL, a fresh
        ``jti`` per assertion (the server rejects replays); we set ``iat``/``exp`` from our clock (at most
        five minutes apart) and the ``kid`` (+ ``jku``) header the server finds our key by."""
        now = int(self.clock())
        header: dict[str, Any] = {"kid": self.kid, "typ": "JWT"}
        if self.jku:
            header["jku"] = self.jku
        return oauth.sign_assertion(
            self._jose_key,
            client_id=self.client_id,
            token_url=token_url or self.token_url,
            alg=self.alg,
            issued_at=now,
            expires_at=now + ASSERTION_LIFETIME_S,
            header=header,
        )

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set to register with the authorization server (never contains the private key)."""
        return {"keys": [dict(self.public_jwk)]}

    def _request_token(self) -> tuple[str, float]:
        self._check_signing_alg()
        try:
            answer = oauth.request_token(
                self.token_url,
                client_id=self.client_id,
                auth_method=oauth.AssertionAuth(self.client_assertion),
                timeout=self.timeout,
                grant_type="client_credentials",
                scope=self.scopes,
            )
        except requests.exceptions.RequestException as exc:
            raise FhirUnreachable("token endpoint could not be reached") from exc
        body = answer.body
        if answer.status != 200:
            error = body.get("error")
            raise FhirAuthError(
                f"token endpoint refused the client ({answer.status})",
                status=answer.status,
                detail=error if isinstance(error, str) else None,
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise FhirInvalidResponse("token response has no access_token")
        if str(body.get("token_type", "bearer")).lower() != "bearer":
            raise FhirInvalidResponse("token response is not a bearer token")
        expires_in = body.get("expires_in", 300)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 300.0
        granted = body.get("scope")
        # RFC 6749 §5.1: the response names the scope when it differs from the request (OpenEMR always does).
        self.granted_scopes = tuple((granted if isinstance(granted, str) else self.scopes).split())
        missing = [s for s in self.scopes.split() if s not in self.granted_scopes]
        if missing:
            log.warning("token lacks %d requested scope(s): %s", len(missing), " ".join(missing))
        log.info("obtained a FHIR access token (expires in %ds)", int(lifetime))
        return token, lifetime

    def _check_signing_alg(self) -> None:
        """Refuse early, with the reason, when the server says it cannot verify our algorithm.

        SMART App Launch 2.x §Backend Services: servers SHALL support RS384 and ES384 and advertise their
        choice in ``token_endpoint_auth_signing_alg_values_supported``; servers in the field support one only
        (OpenEMR 7.0.3: RS384), so a key type the server does not list is a configuration error, not a retry.
        """
        advertised = self._smart_configuration().get("token_endpoint_auth_signing_alg_values_supported")
        if isinstance(advertised, list) and advertised and self.alg not in advertised:
            raise FhirAuthError(
                f"the FHIR server does not accept {self.alg} client assertions "
                f"(it lists {', '.join(str(a) for a in advertised)}); configure a key of that type",
                detail="unsupported_signing_alg",
            )

    def _derive_scopes(self) -> str:
        statement = self._json_field(f"{self._fhir_base_url}/metadata", None) if self._fhir_base_url else None
        server_types = None
        if isinstance(statement, dict) and statement.get("resourceType") == "CapabilityStatement":
            caps = Capabilities.from_statement(statement)
            # A statement without resources (security-only, as some servers publish) says nothing of types.
            server_types = [t for t in caps.resources if caps.can(t, "read") or caps.can(t, "search-type")]
            server_types = server_types or None
        supported = smart_scopes.flatten_scopes_supported(self._smart_configuration().get("scopes_supported"))
        scopes = smart_scopes.derive_scopes(server_types=server_types, scopes_supported=supported)
        if not scopes:
            raise FhirAuthError("no SMART system read scope to ask for: the server lists none of our types")
        return scopes

    def _smart_configuration(self) -> dict[str, Any]:
        """``{base}/.well-known/smart-configuration`` (SMART App Launch §Discovery), read once, or {}."""
        if self._smart_config is None:
            found = None
            if self._fhir_base_url:
                try:
                    found = oauth.smart_configuration(
                        self._fhir_base_url, timeout=self.timeout, session=self.session
                    )
                except requests.exceptions.RequestException as exc:
                    raise FhirUnreachable("SMART configuration could not be read") from exc
            self._smart_config = found or {}
        return self._smart_config

    def _discover_token_url(self) -> str:
        """SMART App Launch §Discovery: ``.well-known/smart-configuration``; older servers only put the token
        URL in the CapabilityStatement's ``oauth-uris`` security extension, which is the fallback."""
        base = self._fhir_base_url
        token_url = self._smart_configuration().get("token_endpoint")
        if token_url is None:
            statement = self._json_field(f"{base}/metadata", None)
            if isinstance(statement, dict):
                token_url = Capabilities.from_statement(statement).token_url
        if not isinstance(token_url, str) or not token_url.startswith(("https://", "http://")):
            raise FhirAuthError("server advertises no SMART token endpoint")
        return token_url

    def _json_field(self, url: str, key: str | None) -> Any:
        try:
            body = oauth.get_json(url, timeout=self.timeout, session=self.session)
        except requests.exceptions.RequestException as exc:
            raise FhirUnreachable("SMART configuration could not be read") from exc
        if key is None:
            return body
        return body.get(key) if isinstance(body, dict) else None


# --- keys --------------------------------------------------------------------------------------------------
def load_signing_key(key: bytes | str | SigningKey) -> SigningKey:
    """An RSA (≥ 2048 bits) or EC P-384 private key from PEM text or a key object."""
    if isinstance(key, str):
        key = key.encode()
    if isinstance(key, bytes):
        loaded = serialization.load_pem_private_key(key, password=None)
    else:
        loaded = key
    if isinstance(loaded, rsa.RSAPrivateKey):
        if loaded.key_size < 2048:
            raise ValueError("RSA signing key must be at least 2048 bits")
        return loaded
    if isinstance(loaded, ec.EllipticCurvePrivateKey) and isinstance(loaded.curve, ec.SECP384R1):
        return loaded
    raise ValueError("signing key must be RSA (RS384) or EC P-384 (ES384)")


def algorithm_for(key: SigningKey) -> str:
    """SMART Backend Services requires support for RS384 and ES384 (§Registering a client)."""
    return "RS384" if isinstance(key, rsa.RSAPrivateKey) else "ES384"


def new_signing_key(alg: str = "RS384") -> bytes:
    """A fresh private key as PEM, for ``bbdirect`` set-up and the tests (never written to the repo)."""
    if alg == "RS384":
        key: SigningKey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        raise ValueError(f"alg must be one of {SUPPORTED_ALGS}")
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def jose_key(key: SigningKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> RSAKey | ECKey:
    """``key`` as a JOSE key of joserfc, the JOSE library Authlib signs with (``authlib.jose`` is deprecated
    in its favour)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RSAKey.import_key(key)
    return ECKey.import_key(key)


def public_jwk(key: SigningKey, *, alg: str | None = None, kid: str | None = None) -> dict[str, Any]:
    """The public half of ``key`` as a JWK (RFC 7517), ``kid`` defaulting to its RFC 7638 thumbprint."""
    public = jose_key(key.public_key())
    return {
        **public.as_dict(private=False),
        "kid": kid or public.thumbprint(),
        "alg": alg or algorithm_for(key),
        "use": "sig",
        "key_ops": ["verify"],
    }


def load_or_create_key(path: str | os.PathLike[str], *, create: bool = True) -> bytes:
    """The PEM signing key at ``path``; with ``create``, a new RSA key (RS384) is written there first if the
    file does not exist (mode 0600, atomically: of several processes starting at once, one key wins and all
    use it). The key must outlive restarts: its public half is registered with the EHR."""
    target = Path(path)
    try:
        return target.read_bytes()
    except FileNotFoundError:
        if not create:
            raise
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".fhir-key-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(new_signing_key("RS384"))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, target)  # fails if another process created it meanwhile: theirs is kept
            log.info("generated the SMART Backend Services signing key (RS384)")
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return target.read_bytes()


def signing_key_from_settings(settings: Any) -> bytes:
    """The PEM key for ``fhir.private_key_file``, or the generated one in the data directory when empty."""
    configured = getattr(settings, "fhir_private_key_file", "")
    if configured:
        return load_or_create_key(configured, create=False)
    return load_or_create_key(DEFAULT_KEY_FILE)


def jwks_from_settings(settings: Any) -> dict[str, Any]:
    """The public JWK Set to register for the configured (or generated) key: what ``/.well-known/jwks.json``
    serves and ``bbdirect fhir jwks`` prints."""
    key = load_signing_key(signing_key_from_settings(settings))
    return {"keys": [public_jwk(key, kid=getattr(settings, "fhir_key_id", "") or None)]}


def auth_from_settings(settings: Any) -> Auth:
    """The configured ``Auth`` from ``fhir_bridge.config.Settings`` (``fhir_auth``: none|bearer|smart)."""
    kind = getattr(settings, "fhir_auth", "none")
    if kind == "none":
        return NoAuth()
    if kind == "bearer":
        return BearerAuth(settings.fhir_bearer_token)
    if kind == "smart":
        return SmartBackendAuth(
            settings.fhir_client_id,
            signing_key_from_settings(settings),
            token_url=settings.fhir_token_url or None,
            fhir_base_url=settings.fhir_base_url,
            scopes=settings.fhir_scopes or None,
            kid=settings.fhir_key_id or None,
            timeout=settings.fhir_timeout,
        )
    raise ValueError("fhir_auth must be none, bearer or smart")

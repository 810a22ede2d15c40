"""The one error taxonomy of the Direct agent.

Every failure a user or an integrator can see is one of these classes. Each has a stable ``code`` (used in
JSON output, the REST API, the database and the UI) and a human ``message``. Callers branch on the class
(``except TransientError``) or on ``code``; they never parse messages.

Why one module: the same failure (say, "no certificate for this address") travels from discovery through
the pipeline to a web page; defining it once keeps its code and its wording the same everywhere.
"""

from __future__ import annotations


class DirectError(Exception):
    """Base of every Direct failure. ``code`` is stable; ``message`` is for people (no PHI, no keys).

    The four attributes are the project's one error protocol (``fhir_bridge.errors.DomainError``), declared
    here because this library never imports the sidecar.
    """

    code: str = "direct_error"
    #: True when trying again later may succeed (network, 4xx SMTP, DNS timeout).
    transient: bool = False
    #: Set by unseal: decided with our private key before any signature verified, so its reply must not
    #: differ by timing or text (see ``direct.smime.seal._secret_dependent``).
    secret_dependent: bool = False

    def __init__(
        self, message: str | None = None, *, code: str | None = None, detail: str | None = None
    ) -> None:
        self.message: str = message or (self.__class__.__doc__ or type(self).__name__).strip().splitlines()[0]
        if code:
            self.code = code
        #: Extra machine-readable detail (e.g. the SMTP server's reply text); never PHI.
        self.detail: str | None = detail
        super().__init__(self.message)

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.detail:
            out["detail"] = self.detail
        return out


# --- addresses -----------------------------------------------------------------------------------------
class AddressError(DirectError):
    """The Direct address is not a valid e-mail address."""

    code = "bad_address"


# --- discovery -------------------------------------------------------------------------------------------
class DiscoveryError(DirectError):
    """Certificate discovery failed."""

    code = "discovery_failed"


class NoCertificate(DiscoveryError):
    """No certificate was found for this address in DNS or LDAP."""

    code = "no_certificate"


class AllCertificatesUnusable(DiscoveryError):
    """Certificates were found for this address but none of them can be used."""

    code = "no_usable_certificate"


class DiscoveryTimeout(DiscoveryError):
    """The certificate servers did not answer in time."""

    code = "discovery_timeout"
    transient = True


class TooManyLookups(DiscoveryError):
    """Too many addresses were looked up in a short time; try again shortly."""

    code = "too_many_lookups"
    transient = True

    def __init__(self, message: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(message)
        #: Whole seconds until the same lookup is allowed again.
        self.retry_after = max(1, int(retry_after))


class DiscoveryDeadline(DiscoveryTimeout):
    """Certificate discovery did not finish within its total time budget."""

    code = "discovery_deadline"
    transient = True


class FetchRefused(DiscoveryError):
    """A place the recipient's DNS records point to was refused by the outbound fetch policy."""

    code = "fetch_refused"


# --- trust -----------------------------------------------------------------------------------------------
class TrustError(DirectError):
    """The certificate is not trusted."""

    code = "untrusted"


class Untrusted(TrustError):
    """The certificate does not chain to any trust anchor we accept."""

    code = "untrusted"


class Revoked(TrustError):
    """The certificate has been revoked by its issuer."""

    code = "revoked"


class Expired(TrustError):
    """The certificate is expired or not yet valid."""

    code = "expired"


class WrongKeyUsage(TrustError):
    """The certificate may not be used for this purpose (key usage)."""

    code = "wrong_key_usage"


class WeakKey(TrustError):
    """The certificate's key is too weak: RSA keys must have at least 2048 bits."""

    code = "weak_key"


class NotBound(TrustError):
    """The certificate is not issued to this Direct address or its domain."""

    code = "not_bound"


# --- cryptography ---------------------------------------------------------------------------------------
class CryptoError(DirectError):
    """The message could not be signed, encrypted, decrypted or verified."""

    code = "crypto_error"


class DecryptionFailed(CryptoError):
    """None of our private keys can decrypt this message."""

    code = "decrypt_failed"


class UnsupportedAlgorithm(CryptoError):
    """The message uses an algorithm we do not accept."""

    code = "unsupported_algorithm"


class WeakDigest(CryptoError):
    """The message is signed with a digest that is no longer allowed (SHA-1, MD5)."""

    code = "weak_digest"


class BadSignature(CryptoError):
    """The signature does not match the content (the message was altered)."""

    code = "bad_signature"


class MissingSignature(CryptoError):
    """The message is not signed."""

    code = "missing_signature"


class UntrustedSigner(CryptoError):
    """The message is signed by a certificate we do not trust."""

    code = "untrusted_signer"


class RoutingTamper(CryptoError):
    """The envelope sender or recipients do not match the signed message headers."""

    code = "routing_tamper"


class NotEncrypted(CryptoError):
    """The message is not encrypted (S/MIME enveloped-data), as every Direct message must be."""

    code = "not_encrypted"


class MalformedMessage(DirectError):
    """The message is not a well-formed Direct (S/MIME) message."""

    code = "malformed_message"


# --- delivery --------------------------------------------------------------------------------------------
class DeliveryError(DirectError):
    """The message could not be delivered."""

    code = "delivery_failed"


class TransientDeliveryError(DeliveryError):
    """The recipient's server is temporarily unavailable; we will try again."""

    code = "delivery_deferred"
    transient = True


class PermanentDeliveryError(DeliveryError):
    """The recipient's server refused the message."""

    code = "delivery_refused"


class MdnTimeout(DeliveryError):
    """No delivery notice (MDN) arrived in time."""

    code = "mdn_timeout"


class DeliveryFailedNotice(DeliveryError):
    """The recipient's system reported that it could not deliver the message (failed MDN or DSN)."""

    code = "delivery_failed_notice"

"""Facts about one certificate: binding to a Direct address, key usage, validity, fingerprint, parsing.

Pure functions over ``cryptography`` objects, shared by discovery (is this candidate usable?), trust (path
validation) and S/MIME (which of our certificates signs, which encrypts). Binding follows the Applicability
Statement §4.1 as amended in 2019: only subjectAltName counts, never the subject ``E=`` (direct.md CERT-1).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID

from direct.address import DirectAddress

Binding = Literal["address", "domain"]
Purpose = Literal["sign", "encrypt"]


def sha256_hex(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the DER encoding (the ``sha256`` of the lookup JSON contract)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def subject_text(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _sans(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # malformed extension: treat as absent, so the certificate binds to nothing
        return None


def rfc822_names(cert: x509.Certificate) -> list[str]:
    san = _sans(cert)
    return [n.lower() for n in san.get_values_for_type(x509.RFC822Name)] if san else []


def dns_names(cert: x509.Certificate) -> list[str]:
    san = _sans(cert)
    return [n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName)] if san else []


def binds(cert: x509.Certificate, address: DirectAddress, binding: Binding) -> bool:
    """The one SAN binding rule (AS §4.1 as amended in 2019; CERT-1, CERT-2; RFC 5280 §4.2.1.6).

    ``"address"``: an rfc822Name equals the address (as written, or normalised for lookup: lower-case,
    ``+tag`` removed); ``"domain"``: a dNSName equals its domain. Case-insensitive (PIT-12); wildcard
    dNSNames never bind (Direct Spec §1.4); the subject ``E=`` never counts.
    """
    if binding == "address":
        wanted = {str(address).lower(), address.for_lookup}
        return any(name in wanted for name in rfc822_names(cert))
    return any("*" not in name and name == address.domain for name in dns_names(cert))


def bound_to(cert: x509.Certificate, address: DirectAddress | str) -> Binding | None:
    """``"address"`` when an rfc822Name equals the address, ``"domain"`` when a dNSName equals its domain."""
    addr = address if isinstance(address, DirectAddress) else DirectAddress.parse(address)
    if binds(cert, addr, "address"):
        return "address"
    return "domain" if binds(cert, addr, "domain") else None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def eku_allows_email(cert: x509.Certificate) -> bool:
    """RFC 5750 §4.4.4: when extendedKeyUsage is present it must allow emailProtection (or any)."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.EMAIL_PROTECTION in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku


def can_encrypt(cert: x509.Certificate) -> bool:
    """RFC 5750 §4.4.2: key transport needs keyEncipherment (RSA); EC recipients need keyAgreement."""
    if not eku_allows_email(cert):
        return False
    ku = _key_usage(cert)
    if ku is None:
        return True
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ku.key_agreement
    return ku.key_encipherment if isinstance(key, rsa.RSAPublicKey) else False


def can_sign(cert: x509.Certificate) -> bool:
    """RFC 5750 §4.4.2: signing needs digitalSignature or nonRepudiation."""
    if not eku_allows_email(cert):
        return False
    ku = _key_usage(cert)
    return ku is None or ku.digital_signature or ku.content_commitment


def fits_purpose(cert: x509.Certificate, purpose: Purpose) -> bool:
    return can_encrypt(cert) if purpose == "encrypt" else can_sign(cert)


#: ALG-8: RSA keys MUST have at least this many bits, for recipients (we encrypt to them) and signers (we
#: verify them). AS 1.3 (ANSI/DS 2019-01-100-2021) via the Java RI's ``isAllowedCertKey``; ETT 1.3 sends
#: CERT_LESS_THAN_2048_BITS, which a receiver MUST reject.
MIN_RSA_BITS = 2048


def weak_key(cert: x509.Certificate) -> str | None:
    """Why the certificate's public key is too weak for Direct (RSA < 2048 bits), or None when it is not."""
    try:
        key = cert.public_key()
    except ValueError:  # an unparsable key is no key: refused elsewhere as unsupported
        return None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"the RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are required"
    return None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def is_current(cert: x509.Certificate, moment: dt.datetime | None = None) -> bool:
    """RFC 5280 §4.1.2.5: ``notBefore <= moment <= notAfter``."""
    moment = moment or utcnow()
    return cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc


def load_der(data: bytes) -> x509.Certificate:
    """One DER certificate; ValueError for anything that is not one (cryptography raises x509.InvalidVersion,
    which is not a ValueError, for a version field other than v1-v3: peer data must not crash callers)."""
    try:
        return x509.load_der_x509_certificate(data)
    except x509.InvalidVersion as exc:
        raise ValueError("unsupported X.509 version") from exc


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in ``data``: one DER certificate, PEM certificates, or PKCS#7 (DER or PEM).

    Raises ``ValueError`` when nothing parses. PKCS#7 is what ``userSMIMECertificate``, ``.p7c`` AIA files
    and trust bundles carry.
    """
    try:
        return _load_certificates(data)
    except x509.InvalidVersion as exc:
        raise ValueError("unsupported X.509 version") from exc


def _load_certificates(data: bytes) -> list[x509.Certificate]:
    # Never strip DER: its last byte is a signature byte and may well be 0x20 or 0x0a.
    if b"-----BEGIN PKCS7-----" in data or b"-----BEGIN CMS-----" in data:
        return list(
            pkcs7.load_pem_pkcs7_certificates(
                data.replace(b"BEGIN CMS", b"BEGIN PKCS7").replace(b"END CMS", b"END PKCS7")
            )
        )
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificates(data)
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        pass
    try:
        return list(pkcs7.load_der_pkcs7_certificates(data))
    except ValueError as exc:
        raise ValueError("not a certificate, PEM certificates or PKCS#7 certificates") from exc

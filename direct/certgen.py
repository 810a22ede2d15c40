"""Generate X.509 certificates for Direct: demo identities and test PKIs.

Why this is in the product: ``bbdirect demo`` and ``bbdirect certs`` must work on a fresh machine with no
certificates at all, so the product makes its own CA and address- or domain-bound identities. The test
suite builds every odd certificate it needs (expired, wrong key usage, non-critical basicConstraints,
intermediate without AKI, revoked with a CRL...) through the same functions, so there is one place that
knows how a Direct certificate is shaped. Nothing here ever writes a private key to a log.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from direct.files import write_private

#: The digests cryptography signs a certificate with (its ``CertificateBuilder.sign`` accepts no other).
SigningHash = (
    hashes.SHA224
    | hashes.SHA256
    | hashes.SHA384
    | hashes.SHA512
    | hashes.SHA3_224
    | hashes.SHA3_256
    | hashes.SHA3_384
    | hashes.SHA3_512
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0)


@dataclass
class Issued:
    """A certificate with its private key (and the chain above it, leaf-first, without the root)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``stem.pem`` (certificate + chain) and ``stem.key`` (mode 0600); return both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}.key"
        cert_path.write_bytes(
            self.cert_pem + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)
        )
        write_private(key_path, self.key_pem)  # 0600, never through a planted symlink
        return cert_path, key_path


def new_key(kind: str = "rsa", bits: int = 2048) -> PrivateKey:
    """A fresh private key: RSA (Direct's default; ≥ 2048 bits) or EC P-256/P-384 (``kind='ec'``)."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP384R1() if bits >= 384 else ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _name(common_name: str, org: str | None = None, email: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if email:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(attrs)


def make_ca(
    common_name: str,
    *,
    issuer: Issued | None = None,
    key: PrivateKey | None = None,
    days: int = 3650,
    basic_constraints_critical: bool = True,
    with_aki: bool = True,
    with_ski: bool = True,
    path_length: int | None = None,
    aia_ca_issuers_url: str | None = None,
    crl_url: str | None = None,
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
    hash_alg: SigningHash | None = None,
) -> Issued:
    """A root CA (``issuer=None``) or an intermediate CA signed by ``issuer``.

    ``basic_constraints_critical=False`` and ``with_aki=False`` reproduce DCDT's CAs, which RFC 5280 path
    validation accepts and TLS-style verifiers reject.
    """
    key = key or new_key()
    start = not_before or _now() - _dt.timedelta(days=1)
    end = not_after or start + _dt.timedelta(days=days)
    subject = _name(common_name, org="Blue Button Direct Test")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), basic_constraints_critical)
        .add_extension(_key_usage(digital_signature=True, cert_sign=True), critical=True)
    )
    if with_ski:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    signer_key = issuer.key if issuer else key
    if with_aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), False
        )
    builder = _add_distribution(builder, aia_ca_issuers_url, crl_url)
    cert = builder.sign(signer_key, hash_alg or hashes.SHA256())
    chain = ([issuer.cert, *issuer.chain] if issuer and issuer.chain is not None else []) if issuer else []
    # The root itself is never part of a chain we send.
    if issuer and _is_self_signed(issuer.cert):
        chain = []
    return Issued(cert, key, chain)


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_agreement: bool = False,
    cert_sign: bool = False,
) -> x509.KeyUsage:
    """RFC 5280 §4.2.1.3 keyUsage: CAs get keyCertSign + cRLSign; Direct leaves digitalSignature and
    keyEncipherment (RSA) or keyAgreement (EC) (CERT-4; DCDT's leaf profile)."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def _add_distribution(
    builder: x509.CertificateBuilder, aia_url: str | None, crl_url: str | None
) -> x509.CertificateBuilder:
    if aia_url:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(aia_url),
                    )
                ]
            ),
            False,
        )
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
            ),
            False,
        )
    return builder


def make_leaf(
    issuer: Issued,
    *,
    address: str | None = None,
    domain: str | None = None,
    common_name: str | None = None,
    key: PrivateKey | None = None,
    key_kind: str = "rsa",
    bits: int = 2048,
    days: int = 825,
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
    digital_signature: bool = True,
    key_encipherment: bool = True,
    extra_sans: Sequence[x509.GeneralName] = (),
    aia_ca_issuers_url: str | None = None,
    crl_url: str | None = None,
    hash_alg: SigningHash | None = None,
    serial: int | None = None,
) -> Issued:
    """An end-entity Direct certificate.

    Address-bound: ``address='bob@direct.example'`` → subjectAltName rfc822Name (and E= in the subject).
    Domain-bound: ``domain='direct.example'`` → subjectAltName dNSName. Key usage defaults to both
    digitalSignature (signing) and keyEncipherment (encryption), as Direct certificates usually carry.
    """
    if not (address or domain):
        raise ValueError("a Direct certificate is bound to an address or a domain")
    key = key or new_key(key_kind, bits)
    start = not_before or _now() - _dt.timedelta(days=1)
    end = not_after or start + _dt.timedelta(days=days)
    cn = common_name or address or domain or "direct"
    sans: list[x509.GeneralName] = []
    if address:
        sans.append(x509.RFC822Name(address))
    if domain:
        sans.append(x509.DNSName(domain))
    sans.extend(extra_sans)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key_encipherment_ok = False  # EC keys agree keys, they do not encipher them
    else:
        key_encipherment_ok = key_encipherment
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org="Blue Button Direct Test", email=address))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(
            _key_usage(
                digital_signature=digital_signature,
                key_encipherment=key_encipherment_ok,
                key_agreement=isinstance(key, ec.EllipticCurvePrivateKey) and key_encipherment,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectAlternativeName(sans), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False)
    )
    builder = _add_distribution(builder, aia_ca_issuers_url, crl_url)
    cert = builder.sign(issuer.key, hash_alg or hashes.SHA256())
    chain = [] if _is_self_signed(issuer.cert) else [issuer.cert, *issuer.chain]
    return Issued(cert, key, chain)


def make_crl(
    issuer: Issued,
    revoked: Sequence[x509.Certificate] = (),
    *,
    days: int = 7,
    last_update: _dt.datetime | None = None,
) -> x509.CertificateRevocationList:
    """A CRL from ``issuer`` listing ``revoked`` certificates."""
    start = last_update or _now() - _dt.timedelta(hours=1)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(start)
        .next_update(start + _dt.timedelta(days=days))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(start).build()
        )
    return builder.sign(issuer.key, hashes.SHA256())


def load_pem_chain(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM blob, in order (leaf first when the file is a chain)."""
    return x509.load_pem_x509_certificates(data)


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    """A PEM or DER private key (RSA or EC); ValueError/TypeError when neither or the password is wrong."""
    if b"-----BEGIN" in data:
        key = serialization.load_pem_private_key(data, password)
    else:
        key = serialization.load_der_private_key(data, password)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("only RSA and EC private keys are supported")
    return key

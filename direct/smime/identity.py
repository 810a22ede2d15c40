"""Our own Direct identities: a certificate, its private key and the chain above it.

Why a separate type: a HISP holds several identities at once (address-bound for ``alice@x``, domain-bound for
``x``), and inbound decryption must try whichever one a message was encrypted to. Keeping cert, key and chain
together also lets the signer add the chain to every SignedData (ETT DTS 167).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from direct import certs as certs_module
from direct.certgen import load_private_key
from direct.errors import MalformedMessage

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class Identity:
    """One of our own certificates with its private key and intermediates (leaf first, root excluded)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)

    def __repr__(self) -> str:  # never show the key
        return f"Identity(subject={self.cert.subject.rfc4514_string()!r})"

    @classmethod
    def from_issued(cls, issued: object) -> Identity:
        """Adapt anything with ``cert``, ``key`` and ``chain`` (e.g. :class:`direct.certgen.Issued`)."""
        return cls(issued.cert, issued.key, list(getattr(issued, "chain", []) or []))  # type: ignore[attr-defined]  # duck-typed Issued

    @classmethod
    def load(cls, cert_path: str | Path, key_path: str | Path, password: bytes | None = None) -> Identity:
        """Read a PEM certificate file (leaf first, then chain) and its PEM/DER private key."""
        certs = load_certificates(Path(cert_path).read_bytes())
        if not certs:
            raise MalformedMessage(f"no certificate in {cert_path}", code="bad_certificate_file")
        try:
            key = load_private_key(Path(key_path).read_bytes(), password)
        except (ValueError, TypeError) as exc:  # also "only RSA and EC private keys are supported"
            raise MalformedMessage(f"cannot read private key {key_path}", code="bad_key_file") from exc
        if key.public_key().public_numbers() != certs[0].public_key().public_numbers():  # type: ignore[union-attr]  # RSA/EC keys only
            raise MalformedMessage(
                f"key {key_path} does not match certificate {cert_path}", code="bad_key_file"
            )
        return cls(certs[0], key, certs[1:])


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """All certificates in ``data`` (PEM, DER or PKCS#7), ``[]`` when none parses.

    The one loader is :func:`direct.certs.load_certificates` (which raises); this keeps the lenient contract
    the CLI and the sidecar rely on.
    """
    try:
        return certs_module.load_certificates(data)
    except ValueError:
        return []


def load_certificate_files(paths: Iterable[str | Path]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for path in paths:
        out.extend(load_certificates(Path(path).read_bytes()))
    return out


def end_entities(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    """Drop CA certificates: a recipient PEM often carries its chain, and we never encrypt to a CA."""
    out = []
    for cert in certs:
        try:
            if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                continue
        except x509.ExtensionNotFound:
            pass
        out.append(cert)
    return out


def as_identities(items: Sequence[object]) -> list[Identity]:
    return [i if isinstance(i, Identity) else Identity.from_issued(i) for i in items]

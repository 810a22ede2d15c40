"""A test PKI built at test time on :mod:`direct.certgen`; no private key is ever committed.

``TestPKI`` keeps the CAs it made so a test can ask for "a leaf for bob@x from the intermediate", "the same
but expired", "revoked, with the CRL" in one line each, and write any of them to a temporary folder.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from direct import certgen
from direct.certgen import Issued


class TestPKI:
    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.root = certgen.make_ca("BBD Test Root CA")
        self.intermediate = certgen.make_ca("BBD Test Intermediate CA", issuer=self.root)
        self._revoked: dict[str, list[x509.Certificate]] = {}

    # --- certificates --------------------------------------------------------------------------------
    def ca(self, name: str, **kwargs) -> Issued:
        """Another root (``issuer`` absent) or intermediate CA."""
        return certgen.make_ca(name, **kwargs)

    def address(self, address: str, issuer: Issued | None = None, **kwargs) -> Issued:
        """An address-bound certificate (rfc822Name SAN)."""
        return certgen.make_leaf(issuer or self.intermediate, address=address, **kwargs)

    def domain(self, domain: str, issuer: Issued | None = None, **kwargs) -> Issued:
        """A domain-bound certificate (dNSName SAN)."""
        return certgen.make_leaf(issuer or self.intermediate, domain=domain, **kwargs)

    def expired(self, address: str, issuer: Issued | None = None) -> Issued:
        now = dt.datetime.now(dt.UTC)
        return self.address(
            address, issuer, not_before=now - dt.timedelta(days=400), not_after=now - dt.timedelta(days=1)
        )

    def not_yet_valid(self, address: str, issuer: Issued | None = None) -> Issued:
        now = dt.datetime.now(dt.UTC)
        return self.address(
            address, issuer, not_before=now + dt.timedelta(days=10), not_after=now + dt.timedelta(days=400)
        )

    def wrong_key_usage(self, address: str, issuer: Issued | None = None) -> Issued:
        """Signing only: no keyEncipherment, so nobody may encrypt to it."""
        return self.address(address, issuer, key_encipherment=False)

    def revoke(self, leaf: Issued, issuer: Issued | None = None) -> x509.CertificateRevocationList:
        """Mark ``leaf`` revoked and return the issuer's new CRL."""
        issuer = issuer or self.intermediate
        key = issuer.cert.subject.rfc4514_string()
        self._revoked.setdefault(key, []).append(leaf.cert)
        return certgen.make_crl(issuer, self._revoked[key])

    # --- files -------------------------------------------------------------------------------------------
    def write(self, issued: Issued, stem: str) -> tuple[Path, Path]:
        return issued.write(self.dir, stem)

    def write_cert(self, cert: x509.Certificate, stem: str) -> Path:
        path = self.dir / f"{stem}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    @property
    def root_pem(self) -> Path:
        return self.write_cert(self.root.cert, "root")

"""CRL retrieval with a cache: the revocation half of path validation (RFC 5280 §6.3, direct.md CERT-7).

A CRL is fetched from the certificate's cRLDistributionPoints HTTP URI, checked against its issuer's
signature, and kept until its ``nextUpdate`` (capped by ``max_age``) so one send to ten recipients of the
same HISP downloads it once. A CRL we cannot get is a *soft* failure: reported, not fatal — that is what the
Java RI and DCDT do, and it keeps a down CRL server from blocking every patient transmission.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from direct.netpolicy import url_cap
from direct.trust.fetch import Fetcher, FetchError


@dataclass
class CrlStatus:
    """Outcome of one revocation check: ``revoked`` is authoritative only when ``checked`` is True."""

    checked: bool
    revoked: bool = False
    problem: str | None = None  # soft failure text, e.g. "crl_unreachable: http://..."


def crl_urls(cert: x509.Certificate) -> list[str]:
    try:
        cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    urls: list[str] = []
    for point in cdp:
        for name in point.full_name or []:
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith("http"):
                urls.append(name.value)
    return urls


class CrlCache:
    """Thread-safe in-memory CRL cache keyed by URL."""

    def __init__(self, fetcher: Fetcher, *, max_age: dt.timedelta = dt.timedelta(hours=6)):
        self.fetcher = fetcher
        self.max_age = max_age
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[x509.CertificateRevocationList, dt.datetime]] = {}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get(self, url: str, moment: dt.datetime) -> x509.CertificateRevocationList:
        with self._lock:
            hit = self._entries.get(url)
        if hit and moment < hit[1]:
            return hit[0]
        data = self.fetcher.get(url)
        try:
            crl = x509.load_der_x509_crl(data)
        except ValueError:
            try:
                crl = x509.load_pem_x509_crl(data)
            except ValueError as exc:
                raise FetchError("bad_crl", f"{url} is not a CRL") from exc
        expires = moment + self.max_age
        if crl.next_update_utc is not None:
            expires = min(expires, crl.next_update_utc)
        with self._lock:
            self._entries[url] = (crl, expires)
        return crl

    def status(
        self, cert: x509.Certificate, issuer: x509.Certificate | None, moment: dt.datetime
    ) -> CrlStatus:
        """Is ``cert`` revoked per its first obtainable CRL? No CDP ⇒ not revoked (CERT-7)."""
        urls = crl_urls(cert)
        if not urls:
            return CrlStatus(checked=False)
        problems: list[str] = []
        # Outbound fetch policy (direct.netpolicy): at most a few CRL URLs per certificate.
        cap = url_cap(self.fetcher)
        if len(urls) > cap:
            problems.append(f"crl_urls_capped: {cap} of {len(urls)} CRL URLs tried")
            urls = urls[:cap]
        for url in urls:
            try:
                crl = self.get(url, moment)
            except FetchError as exc:
                problems.append(f"crl_unreachable: {url} ({exc.code})")
                continue
            if issuer is None:
                problems.append(f"crl_unverifiable: {url} (issuer unknown)")
                continue
            issuer_key = cast(CertificateIssuerPublicKeyTypes, issuer.public_key())  # a CA's key signs
            if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer_key):
                problems.append(f"crl_invalid: {url} (not signed by the issuer)")
                continue
            return CrlStatus(
                checked=True,
                revoked=crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None,
            )
        return CrlStatus(checked=False, problem="; ".join(problems))

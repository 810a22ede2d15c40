"""Certificate discovery for one Direct address: order, stop rule, usability — the DCDT D1-D18 algorithm.

Order (Certificate Discovery IG; DCDT ``lookupStepDnsCertAddr → …DnsCertDomain → SRV → LDAP``; DISC-1):

1. DNS CERT at the address-bound name ``local.domain``
2. DNS CERT at the domain-bound name ``domain``
3. LDAP via ``_ldap._tcp.domain`` SRV, first answering server: ``(mail=local@domain)``
4. same server: ``(mail=domain)``

Stop rule (DISC-2, PIT-12; DCDT D5-D8): the first step that returns any certificate decides. If some of
its certificates are usable they are all selected (D9, D17); if none is, discovery FAILS — it does not fall
back to the next step, because the recipient published certificates and they are all bad.
Records that do not parse as certificates (garbage CERT data, failed IPKIX fetches) are not certificates:
they are reported as warnings and do not trigger the stop rule. Nor does a DNS CERT lookup that fails
(SERVFAIL, timeout): discovery goes on to the next step and to LDAP; when nothing is found anywhere the DNS
failure (not ``no_certificate``) is the result.

Every fetch a lookup makes (IPKIX, AIA, CRL, LDAP servers from SRV, authoritative DNS servers) follows the
outbound fetch policy (:mod:`direct.netpolicy`, ``config.net_policy``): internal ranges refused unless
allow-listed, connections pinned to the checked address, at most 2 URLs per certificate, and one total
budget per lookup (10 s by default) that ends the lookup with ``discovery_deadline``. When nothing usable
was found and a place was refused by the policy, the result says so (``fetch_refused``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from direct import netpolicy
from direct.address import DirectAddress
from direct.certs import Binding, load_certificates, load_der, sha256_hex, subject_text
from direct.discovery.config import DiscoveryConfig
from direct.discovery.dns import CERT_IPKIX, CERT_PKIX, CERT_URI, DnsClient
from direct.discovery.ldap import LdapDirectory, LdapLocator, LdapStep
from direct.errors import (
    AddressError,
    AllCertificatesUnusable,
    DirectError,
    DiscoveryDeadline,
    DiscoveryError,
    FetchRefused,
    NoCertificate,
)
from direct.text import has_control
from direct.trust.fetch import CachingFetcher, Fetcher, FetchError, HttpFetcher
from direct.trust.policy import TrustPolicy, evaluate
from direct.trust.revocation import CrlCache


@dataclass
class Candidate:
    """One discovered certificate and the verdict on it."""

    cert: x509.Certificate
    source: str  # "dns" | "ldap"
    binding: Binding  # where it was found: the address-bound or the domain-bound name/entry
    usable: bool
    reason: str | None
    trusted: bool
    warnings: list[str] = field(default_factory=list)

    def to_dict(self, *, with_verdict: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sha256": sha256_hex(self.cert),
            "source": self.source,
            "binding": self.binding,
            "subject": subject_text(self.cert),
            "not_after": self.cert.not_valid_after_utc.isoformat(),
        }
        if with_verdict:
            out["usable"] = self.usable
            out["reason"] = self.reason
        return out


@dataclass
class LookupResult:
    address: str
    selected: list[Candidate]
    candidates: list[Candidate]
    error: DirectError | None = None
    #: Soft failures (unreachable CRL, garbage records, dead LDAP servers); never PHI.
    warnings: list[str] = field(default_factory=list)

    @property
    def trusted(self) -> bool:
        """True when every selected certificate chains to an anchor (always True under TRUSTED)."""
        return bool(self.selected) and all(c.trusted for c in self.selected)

    def to_dict(self) -> dict[str, Any]:
        """The fixed ``bbdirect lookup --json`` contract."""
        return {
            "address": self.address,
            "selected": [c.to_dict(with_verdict=False) for c in self.selected],
            "candidates": [c.to_dict() for c in self.candidates],
            "error": self.error.to_dict() if self.error else None,
        }

    def raise_for_error(self) -> None:
        if self.error:
            raise self.error


class CertificateResolver:
    """Discover and judge the certificates of Direct addresses. Thread-safe; caches DNS and LDAP answers."""

    def __init__(
        self, config: DiscoveryConfig | None = None, *, clock: Callable[[], dt.datetime] | None = None
    ):
        self.config = config or DiscoveryConfig()
        cfg = self.config
        self.dns = DnsClient(
            cfg.nameservers,
            timeout=cfg.dns_timeout,
            negative_ttl=cfg.negative_ttl,
            max_ttl=cfg.max_ttl,
            authoritative_fallback=cfg.authoritative_fallback,
            authoritative_port=cfg.authoritative_port,
            policy=cfg.net_policy,
        )
        self.ldap = LdapLocator(
            self.dns,
            connect_timeout=cfg.ldap_connect_timeout,
            receive_timeout=cfg.ldap_receive_timeout,
            cache_ttl=cfg.ldap_cache_ttl,
            session_deadline=cfg.ldap_session_deadline,
            policy=cfg.net_policy,
        )
        self.fetcher: Fetcher = cfg.fetcher or HttpFetcher(policy=cfg.net_policy)
        self.ipkix_fetcher: Fetcher = cfg.fetcher or HttpFetcher(
            timeout=cfg.ipkix_timeout,
            deadline=cfg.ipkix_deadline,
            max_bytes=cfg.ipkix_max_bytes,
            policy=cfg.net_policy,
        )
        self.crls = CrlCache(self.fetcher)
        self.aia_fetcher: Fetcher = CachingFetcher(self.fetcher)
        self.clock = clock
        self._ipkix: dict[str, tuple[list[x509.Certificate], float]] = {}
        self._lock = threading.Lock()

    # --- public --------------------------------------------------------------------------------------
    def lookup(
        self,
        address: DirectAddress | str,
        policy: TrustPolicy = TrustPolicy.TRUSTED,
        *,
        local_domain: str | None = None,
    ) -> LookupResult:
        """Run the discovery algorithm; errors are returned in ``result.error`` (never raised)."""
        text = str(address)
        try:
            addr = address if isinstance(address, DirectAddress) else DirectAddress.parse(address)
        except AddressError as exc:
            return LookupResult(text, [], [], exc)
        result = LookupResult(str(addr), [], [])
        # Anchors first, outside the lookup's budget: a due trust bundle refresh has its own limits and
        # interval (a large community bundle must not be cut off by, nor eat, one recipient's lookup).
        anchors = self.anchors(local_domain)
        try:
            # One total budget for everything this lookup does (DNS, IPKIX, LDAP, AIA, CRL).
            with netpolicy.budget(self.config.net_policy.lookup_deadline):
                self._discover(addr, policy, anchors, result)
        except DiscoveryError as exc:
            result.error = exc
        return result

    def _check_budget(self, addr: DirectAddress) -> None:
        if netpolicy.expired():
            seconds = self.config.net_policy.lookup_deadline
            raise DiscoveryDeadline(
                f"discovery for {addr} did not finish within its {seconds:g} s budget "
                "(slow DNS, LDAP or certificate servers)"
            )

    def anchors(self, local_domain: str | None = None) -> list[x509.Certificate]:
        anchors = list(self.config.anchors)
        store = self.config.trust_store
        if store is not None:
            anchors.extend(store.anchors_for(local_domain, "outgoing"))  # we encrypt to them (TB-3)
        return anchors

    # --- algorithm -----------------------------------------------------------------------------------
    def _discover(
        self,
        addr: DirectAddress,
        policy: TrustPolicy,
        anchors: Sequence[x509.Certificate],
        result: LookupResult,
    ) -> None:
        dns_failures: list[DiscoveryError] = []
        steps: list[tuple[str, Binding, Callable[[], list[x509.Certificate]]]] = [
            ("dns", "address", lambda: self._dns_step(addr.dns_name, result.warnings, dns_failures)),
            ("dns", "domain", lambda: self._dns_step(addr.domain, result.warnings, dns_failures)),
        ]
        ldap_state: dict[str, LdapDirectory | None] = {}
        steps.append(("ldap", "address", lambda: self._ldap_certs(addr, addr.for_lookup, ldap_state, result)))
        steps.append(("ldap", "domain", lambda: self._ldap_certs(addr, addr.domain, ldap_state, result)))
        try:
            for source, binding, fetch in steps:
                self._check_budget(addr)
                certs = fetch()
                self._check_budget(addr)
                if not certs:
                    continue
                found = [self._judge(c, addr, source, binding, policy, anchors, certs) for c in certs]
                self._check_budget(addr)  # verdicts cut short by the budget are not verdicts
                result.candidates.extend(found)
                result.selected = [c for c in found if c.usable]
                for c in found:
                    result.warnings.extend(c.warnings)
                if not result.selected:
                    reasons = sorted({c.reason or "unusable" for c in found})
                    raise AllCertificatesUnusable(
                        f"{len(found)} certificate(s) found by {source} ({binding}-bound), none usable: "
                        + ", ".join(reasons)
                    )
                return
        finally:
            directory = ldap_state.get("dir")
            if isinstance(directory, LdapDirectory):
                directory.close()
        refused = [w for w in result.warnings if _refused_by_policy(w)]
        if refused:
            # Nothing was found, and something the address's records point to was refused by the outbound
            # fetch policy: say so, rather than "no certificate is published".
            raise FetchRefused(
                f"no certificate found for {addr}: {len(refused)} location(s) its DNS records name were "
                "refused by the outbound fetch policy (internal address; allow-list: direct.allow_networks)"
            )
        if dns_failures:
            # Nothing was found, but a DNS lookup failed: nobody can say the address publishes no certificate.
            # The failure is the result (discovery_timeout stays transient: the send is retried later).
            raise dns_failures[0]
        raise NoCertificate(f"no certificate is published for {addr} in DNS or LDAP")

    def _judge(
        self,
        cert: x509.Certificate,
        addr: DirectAddress,
        source: str,
        binding: Binding,
        policy: TrustPolicy,
        anchors: Sequence[x509.Certificate],
        found: Sequence[x509.Certificate],
    ) -> Candidate:
        others = [c for c in found if c is not cert]
        moment = self.clock() if self.clock else None
        verdict = evaluate(
            cert,
            addr,
            binding,
            policy=policy,
            anchors=anchors,
            intermediates=others,
            purpose=self.config.purpose,
            fetcher=self.aia_fetcher,
            crls=self.crls,
            moment=moment,
        )
        return Candidate(
            cert, source, binding, verdict.usable, verdict.reason, verdict.trusted, verdict.warnings
        )

    # --- DNS -----------------------------------------------------------------------------------------
    def _dns_step(
        self, name: str, warnings: list[str], failures: list[DiscoveryError]
    ) -> list[x509.Certificate]:
        """One DNS CERT step. A lookup that FAILS (SERVFAIL/REFUSED from every server, or no answer in time)
        is not an answer: Certificate Discovery for Direct (and DCDT's lookup order, DISC-1) moves on to the
        next step when a step yields no certificate, and the stop rule (DISC-2) is only for certificates
        that were found but are unusable — a failed lookup found nothing, so the domain-bound name and then
        LDAP (``_ldap._tcp`` SRV) are still asked. The failure is kept as a note, and as the result when no
        later step finds anything."""
        try:
            return self._dns_certs(name, warnings)
        except DiscoveryError as exc:
            warnings.append(f"dns_lookup_failed: {name} ({exc.code})")
            failures.append(exc)
            return []

    def _dns_certs(self, name: str, warnings: list[str]) -> list[x509.Certificate]:
        certs: list[x509.Certificate] = []
        answer = self.dns.cert(name)
        ipkix = 0
        for rd in answer.rdatas:
            ctype = rd.certificate_type
            if ctype == CERT_PKIX:
                try:
                    certs.append(load_der(rd.certificate))
                except ValueError:
                    warnings.append(f"dns_garbage_cert: {name} (PKIX data is not a certificate)")
            elif ctype in (CERT_IPKIX, CERT_URI):
                ipkix += 1
                if ipkix > self.config.net_policy.max_urls_per_cert:  # outbound fetch policy: URL cap
                    warnings.append(f"ipkix_urls_capped: {name} (first {ipkix - 1} IPKIX URLs tried)")
                    continue
                certs.extend(self._ipkix_certs(name, rd.certificate, answer.ttl, warnings))
            else:
                warnings.append(f"dns_unsupported_cert_type: {name} type {ctype}")
        return certs

    def _ipkix_certs(self, name: str, data: bytes, ttl: float, warnings: list[str]) -> list[x509.Certificate]:
        """RFC 4398 §2.1 IPKIX: the data is a URL of the certificate; fetched with size and time limits."""
        try:
            url = data.decode("ascii").strip().rstrip("\x00")
        except UnicodeDecodeError:
            url = ""
        if not url or has_control(url) or " " in url:
            # Peer data: never fetched, never echoed into a warning that gets printed or logged.
            warnings.append(f"dns_garbage_cert: {name} (IPKIX data is not a URL)")
            return []
        now = time.monotonic()
        with self._lock:
            hit = self._ipkix.get(url)
        if hit and now < hit[1]:
            return hit[0]
        try:
            certs = load_certificates(self.ipkix_fetcher.get(url))
        except FetchError as exc:
            warnings.append(f"ipkix_unavailable: {url} ({exc.code})")
            return []
        except ValueError:
            warnings.append(f"ipkix_garbage: {url}")
            return []
        with self._lock:
            self._ipkix[url] = (certs, now + min(ttl, self.config.max_ttl))  # as long as the record lives
        return certs

    # --- LDAP ----------------------------------------------------------------------------------------
    def _ldap_certs(
        self,
        addr: DirectAddress,
        value: str,
        state: dict[str, LdapDirectory | None],
        result: LookupResult,
    ) -> list[x509.Certificate]:
        step = self.ldap.cached(addr.domain, value)
        if step is None:
            if "dir" not in state:
                state["dir"] = self.ldap.open(addr.domain, result.warnings)
            directory = state["dir"]
            if directory is None:
                return []
            step = directory.search(value)
            self.ldap.remember(addr.domain, value, step)
        result.warnings.extend(step.notes)
        return list(step.certs)


def _refused_by_policy(warning: str) -> bool:
    return warning.startswith("ldap_blocked_address:") or (
        warning.startswith("ipkix_unavailable:") and warning.endswith("(blocked_address)")
    )


__all__ = ["Candidate", "CertificateResolver", "LdapStep", "LookupResult"]

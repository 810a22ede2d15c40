"""Settings of certificate discovery: which DNS servers, which limits, which trust anchors.

Every limit is here so a deployment (and the tests) can tighten them; the defaults follow the Java RI and
DCDT (direct.md DISC-7: LDAP connect 10 s is the RI's — we use a shorter connect timeout because a dead SRV
target must not stall a patient's send; DCDT's resolver waits 5 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography import x509

from direct.certs import Purpose
from direct.netpolicy import NetPolicy
from direct.trust.fetch import Fetcher

if TYPE_CHECKING:
    from direct.trust.bundles import TrustStore


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6), or ``HOST`` alone when ``default_port`` is given → (host,
    port); raises ValueError. The one parser for ``--nameserver``, ``--listen`` and settings."""
    text = text.strip()
    default = "" if default_port is None else str(default_port)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else default
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, default
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not HOST:PORT: {text!r}")
    return host, int(port)


def parse_nameserver(text: str) -> tuple[str, int]:
    """``HOST`` or ``HOST:PORT`` (``[v6]:PORT`` for IPv6) → (host, port), port 53 by default."""
    return parse_hostport(text, 53)


@dataclass
class DiscoveryConfig:
    """Configuration of :class:`~direct.discovery.resolver.CertificateResolver`."""

    #: DNS servers to ask, ``(host, port)``; empty = the system's resolvers (/etc/resolv.conf).
    nameservers: Sequence[tuple[str, int]] = ()
    dns_timeout: float = 3.0
    #: PIT-13 / DISC-5: when the configured resolvers fail a CERT query (SERVFAIL/REFUSED), ask the zone's
    #: authoritative servers directly, on this port (53 in the real world; the test BIND uses another).
    authoritative_fallback: bool = True
    authoritative_port: int = 53
    #: Negative answers (NXDOMAIN/NODATA) are remembered this long (short, so a newly published cert shows).
    negative_ttl: float = 30.0
    #: Positive answers are kept for their TTL, capped here.
    max_ttl: float = 3600.0
    ldap_connect_timeout: float = 2.0
    ldap_receive_timeout: float = 5.0
    #: Whole LDAP session (bind, rootDSE, searches) per server: a trickling server is cut off here.
    ldap_session_deadline: float = 15.0
    ldap_cache_ttl: float = 300.0
    #: IPKIX (certificate by URL) limits.
    ipkix_timeout: float = 3.0
    ipkix_deadline: float = 5.0
    ipkix_max_bytes: int = 65_536
    #: Trust anchors always accepted (PEM files, ``--anchor``), plus those of ``trust_store`` if given.
    anchors: Sequence[x509.Certificate] = ()
    trust_store: TrustStore | None = None
    #: Fetcher for AIA / CRL / IPKIX (default: HTTP with the limits above, under ``net_policy``).
    fetcher: Fetcher | None = None
    #: The outbound fetch policy (:mod:`direct.netpolicy`) for IPKIX, AIA, CRL, LDAP servers from SRV and
    #: authoritative DNS servers: internal ranges refused unless in ``net_policy.allow``, at most
    #: ``max_urls_per_cert`` URLs per certificate, ``lookup_deadline`` seconds per lookup in total.
    #: Default: the strict policy plus the ``BBDIRECT_DIRECT_ALLOW_NETWORKS`` allow-list.
    net_policy: NetPolicy = field(default_factory=NetPolicy.from_env)
    #: Purpose the discovered certificate must allow (discovery is for encrypting to the recipient).
    purpose: Purpose = "encrypt"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_strings(cls, nameservers: Sequence[str] = (), **kwargs: Any) -> DiscoveryConfig:
        return cls(nameservers=[parse_nameserver(n) for n in nameservers], **kwargs)

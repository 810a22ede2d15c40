"""Certificate discovery: DNS CERT and LDAP (via SRV) lookup of a Direct address's certificates."""

from __future__ import annotations

from direct.discovery.config import DiscoveryConfig, parse_nameserver
from direct.discovery.resolver import Candidate, CertificateResolver, LookupResult

__all__ = ["Candidate", "CertificateResolver", "DiscoveryConfig", "LookupResult", "parse_nameserver"]

"""DNS side of discovery: CERT records (RFC 4398) and SRV/A lookups, with a TTL cache.

* Queries go to the configured nameservers (tests: the BIND fixture), UDP first with EDNS0; a truncated
  answer (TC=1) is retried over TCP — CERT answers routinely exceed 512 bytes (AS §5.4, DCDT D14, RFC 7766).
* NXDOMAIN and NODATA both mean "nothing here" (direct.md PIT-13) and are cached briefly (negative TTL,
  RFC 2308 §5).
* Positive answers are cached for their TTL (capped), so a send to ten recipients at one HISP asks once.
* A server that does not answer in time, or answers SERVFAIL/REFUSED, makes us try the next server; when
  none answers we raise :class:`~direct.errors.DiscoveryTimeout` (transient: the send is retried later).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset

from direct import netpolicy
from direct.errors import DiscoveryDeadline, DiscoveryError, DiscoveryTimeout
from direct.netpolicy import NetPolicy, NetPolicyError

#: RFC 4398 §2.1 certificate types we understand.
CERT_PKIX = 1
CERT_IPKIX = 4
CERT_URI = 253  # private "URI" type some implementations (dnsjava, the Java RI) publish: a URL like IPKIX


@dataclass(frozen=True)
class Answer:
    rdatas: tuple[Any, ...]  # the record types' own Rdata classes (CERT, NS, A, AAAA, CNAME)
    ttl: float
    tcp: bool = False


def _owners(qname: dns.name.Name, answer: Sequence[dns.rrset.RRset]) -> set[dns.name.Name]:
    """The queried name plus every CNAME target reached from it in the answer section (RFC 1034 §4.3.2).

    Records owned by any other name are not an answer to our question (a confused or hostile server), so
    they are ignored rather than taken as the recipient's certificates.
    """
    owners = {qname}
    changed = True
    while changed:
        changed = False
        for rrset in answer:
            if rrset.rdtype == dns.rdatatype.CNAME and rrset.name in owners:
                target = rrset[0].target
                if target not in owners:
                    owners.add(target)
                    changed = True
    return owners


class DnsClient:
    """Thread-safe stub resolver with a cache; ``stats`` counts queries, TCP retries and cache hits."""

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] = (),
        *,
        timeout: float = 3.0,
        negative_ttl: float = 30.0,
        max_ttl: float = 3600.0,
        authoritative_fallback: bool = True,
        authoritative_port: int = 53,
        policy: NetPolicy | None = None,
    ):
        #: Outbound fetch policy for servers WE did not configure (the authoritative fallback finds them in
        #: the recipient's NS records): refused ranges are not asked unless allow-listed.
        self.policy = policy
        if not nameservers:
            system = dns.resolver.Resolver()
            # From resolv.conf: addresses (str), never Nameserver objects (those are only ever set in code).
            nameservers = [(ns, 53) for ns in system.nameservers if isinstance(ns, str)]
        self.nameservers = list(nameservers)
        self.timeout = timeout
        self.negative_ttl = negative_ttl
        self.max_ttl = max_ttl
        self._cache: dict[tuple[str, int], tuple[Answer, float]] = {}
        self._lock = threading.Lock()
        self.stats = {"queries": 0, "tcp": 0, "cache_hits": 0, "authoritative": 0}
        #: PIT-13 / DISC-5: when every configured server fails a CERT query (SERVFAIL/REFUSED, e.g. a
        #: PowerDNS recursor, pdns #3312), ask the zone's authoritative servers directly.
        self.authoritative_fallback = authoritative_fallback
        self.authoritative_port = authoritative_port

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def query(self, name: str, rdtype: int) -> Answer:
        """Records of ``rdtype`` at ``name`` (empty when none). Raises DiscoveryTimeout / DiscoveryError."""
        key = (name.lower().rstrip("."), int(rdtype))
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now < hit[1]:
                self.stats["cache_hits"] += 1
                return hit[0]
        answer = self._ask(key[0], rdtype)
        ttl = min(answer.ttl, self.max_ttl) if answer.rdatas else self.negative_ttl
        with self._lock:
            self._cache[key] = (answer, time.monotonic() + ttl)
        return answer

    def _ask(self, name: str, rdtype: int) -> Answer:
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            raise DiscoveryError(f"{name!r} is not a valid DNS name") from exc
        try:
            return self._ask_servers(qname, rdtype, self.nameservers)
        except DiscoveryTimeout:
            raise
        except DiscoveryError as exc:
            if not (self.authoritative_fallback and rdtype == dns.rdatatype.CERT):
                raise
            answer = self._ask_authoritative(qname, rdtype)
            if answer is None:
                raise exc from None
            return answer

    def _ask_authoritative(self, qname: dns.name.Name, rdtype: int) -> Answer | None:
        """The Java RI's fallback (DNSCertificateStore.lookupDNS): find the closest enclosing zone's NS
        records through the configured resolver (which answers NS and A even when it mangles CERT), resolve
        them, and put the question to those servers. None when no authoritative server can be found."""
        zone = qname
        while len(zone.labels) > 2:  # stop at the TLD: never walk to the root
            try:
                ns = self._ask_servers(zone, dns.rdatatype.NS, self.nameservers)
            except DiscoveryError:
                ns = Answer((), self.negative_ttl)
            targets = [rd.target.to_text(omit_final_dot=True) for rd in ns.rdatas]
            if targets:
                servers: list[tuple[str, int]] = []
                for target in targets:
                    try:
                        ips = self.addresses(target)
                    except DiscoveryError:
                        continue
                    if self.policy is not None:  # peer-named servers: the outbound fetch policy applies
                        ips = [ip for ip in ips if self.policy.refusal(ip) is None]
                    servers += [(ip, self.authoritative_port) for ip in ips]
                if not servers:
                    return None
                self.stats["authoritative"] += 1
                try:
                    return self._ask_servers(qname, rdtype, servers)
                except DiscoveryError:
                    return None
            zone = zone.parent()
        return None

    def _ask_servers(self, qname: dns.name.Name, rdtype: int, servers: Sequence[tuple[str, int]]) -> Answer:
        name = qname.to_text(omit_final_dot=True)
        last: Exception | None = None
        timed_out = False
        for host, port in servers:
            # EDNS0 (RFC 6891) with a 1232-byte payload; a TC=1 reply is retried over TCP (RFC 1035 §4.2.1
            # 512-byte UDP limit, RFC 7766 §5; DISC-4, AS §5.4 as DCDT cites it, DCDT D14).
            query = dns.message.make_query(
                qname, dns.rdatatype.RdataType.make(rdtype), use_edns=0, payload=1232
            )
            try:
                timeout = netpolicy.cut(self.timeout)  # never past the lookup's total budget
            except NetPolicyError:
                raise DiscoveryDeadline(
                    f"DNS lookup of {name} not made: the lookup's time budget is spent"
                ) from None
            self.stats["queries"] += 1
            try:
                reply, tcp = dns.query.udp_with_fallback(query, host, timeout=timeout, port=port)
            except dns.exception.Timeout as exc:
                timed_out, last = True, exc
                continue
            except (OSError, dns.exception.DNSException) as exc:
                last = exc
                continue
            if tcp:
                self.stats["tcp"] += 1
            rcode = reply.rcode()
            if rcode == dns.rcode.NXDOMAIN:
                return Answer((), self.negative_ttl, tcp)
            if rcode != dns.rcode.NOERROR:
                last = DiscoveryError(f"DNS server {host}:{port} answered {dns.rcode.to_text(rcode)}")
                continue
            owners = _owners(qname, reply.answer)
            rrsets = [r for r in reply.answer if r.rdtype == rdtype and r.name in owners]
            if not rrsets:
                return Answer((), self.negative_ttl, tcp)  # NODATA (possibly only a CNAME chain)
            rdatas = tuple(rd for rrset in rrsets for rd in rrset)
            return Answer(rdatas, float(min(r.ttl for r in rrsets)), tcp)
        if timed_out and netpolicy.expired():
            raise DiscoveryDeadline(f"DNS lookup of {name} cut off: the lookup's time budget is spent")
        if timed_out:
            raise DiscoveryTimeout(f"no DNS server answered for {name} in {self.timeout}s") from last
        raise DiscoveryError(f"DNS lookup of {name} failed", detail=type(last).__name__ if last else None)

    # --- typed helpers -------------------------------------------------------------------------------
    def cert(self, name: str) -> Answer:
        return self.query(name, dns.rdatatype.CERT)

    def srv(self, name: str) -> Answer:
        return self.query(name, dns.rdatatype.SRV)

    def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of ``host`` through the configured servers (never the OS resolver)."""
        out = [rd.address for rd in self.query(host, dns.rdatatype.A).rdatas]
        if not out:
            out = [rd.address for rd in self.query(host, dns.rdatatype.AAAA).rdatas]
        return out

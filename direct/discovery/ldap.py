"""LDAP side of discovery (Certificate Discovery IG; RFC 2782 SRV; RFC 4515 filters; RFC 4523 attributes).

* ``_ldap._tcp.<domain>`` SRV targets are tried in priority order; within one priority the RFC 2782
  weighted selection picks the order. The random draw is in ``[1, sum]`` (not ``[0, sum]``) so a weight-0
  target is never chosen ahead of a positive-weight one — RFC 2782 says weight 0 should have "a very small
  chance"; we make it zero, which also makes DCDT D16 deterministic (direct.md DISC-6).
* A target that does not resolve (through OUR nameservers), refuses, or does not answer within a short
  connect timeout is skipped (DCDT D10, D12). The first server that answers is the only one searched.
* The base DNs come from the rootDSE ``namingContexts`` (RFC 4512 §5.1; DISC-8); the filter value is
  escaped with ldap3's RFC 4515 escaping so a local part like ``*)(mail=*`` matches nothing it should not.
* Certificates are read from ``userCertificate;binary``, ``userCertificate`` and ``userSMIMECertificate``
  (PKCS#7: the certificates are taken out). Multi-valued attributes and several entries are all collected.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import ldap3
from cryptography import x509
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from direct import netpolicy
from direct.certs import load_certificates
from direct.discovery.dns import DnsClient
from direct.netpolicy import NetPolicy, NetPolicyError
from direct.sockets import shutdown_after
from direct.text import shown

CERT_ATTRIBUTES = [
    "userCertificate;binary",
    "userCertificate",
    "userSMIMECertificate;binary",
    "userSMIMECertificate",
]


#: Limits on what one directory may make us read: entries per search, seconds per search (server-side),
#: naming contexts searched.
MAX_ENTRIES = 50
TIME_LIMIT = 10
MAX_BASES = 8
#: Seconds one LDAP session (bind, rootDSE, both searches) may take in total. receive_timeout bounds each
#: read only: a server trickling one byte per read would otherwise hold a send for ever.
SESSION_DEADLINE = 15.0


@dataclass(frozen=True)
class SrvTarget:
    priority: int
    weight: int
    port: int
    host: str


def order_srv(records: Sequence[SrvTarget], rng: random.Random | None = None) -> list[SrvTarget]:
    """RFC 2782 ordering: ascending priority; weighted random order within a priority (see module doc)."""
    rng = rng or random.Random()
    ordered: list[SrvTarget] = []
    for prio in sorted({r.priority for r in records}):
        group = sorted((r for r in records if r.priority == prio), key=lambda r: r.weight)  # weight 0 first
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                ordered.extend(group)
                break
            draw = rng.randint(1, total)
            running = 0
            for i, rec in enumerate(group):
                running += rec.weight
                if running >= draw:
                    ordered.append(group.pop(i))
                    break
    return ordered


def mail_filter(value: str) -> str:
    """``(mail=<value>)`` with the value escaped per RFC 4515 §3."""
    return f"(mail={escape_filter_chars(value)})"


@dataclass
class LdapStep:
    """What one LDAP search found: parsed certificates and notes about values that were not certificates."""

    certs: list[x509.Certificate]
    notes: list[str]


class LdapDirectory:
    """One reachable LDAP server: base DNs from the rootDSE, then ``mail=`` searches."""

    def __init__(
        self,
        conn: ldap3.Connection,
        bases: list[str],
        url: str,
        *,
        max_entries: int = MAX_ENTRIES,
        time_limit: int = TIME_LIMIT,
    ):
        self.conn = conn
        self.bases = bases[:MAX_BASES]
        self.url = url
        self.max_entries = max_entries
        self.time_limit = time_limit
        #: the session deadline armed by :meth:`LdapLocator.open` (cancelled on close)
        self.timer: threading.Timer | None = None

    def search(self, value: str) -> LdapStep:
        certs: list[x509.Certificate] = []
        notes: list[str] = []
        for base in self.bases:
            try:
                # RFC 4511 §4.5.1 sizeLimit / timeLimit: an honest but huge directory stops itself.
                ok = self.conn.search(
                    base,
                    mail_filter(value),
                    search_scope=ldap3.SUBTREE,
                    attributes=CERT_ATTRIBUTES,
                    size_limit=self.max_entries,
                    time_limit=self.time_limit,
                )
            except LDAPException as exc:  # the server died or stalled mid-search: report, keep what we have
                notes.append(f"ldap_search_failed: {self.url} ({type(exc).__name__})")
                break
            if self.conn.result.get("result") == 4:  # sizeLimitExceeded: keep the entries that came
                notes.append(f"ldap_size_limit: {self.url} (first {self.max_entries} entries used)")
            elif not ok and self.conn.result.get("result") not in (0, 32):  # 32 = noSuchObject
                notes.append(
                    f"ldap_search_failed: {self.url} {shown(str(self.conn.result.get('description')))}"
                )
                continue
            for entry in (self.conn.response or [])[: self.max_entries]:
                if entry.get("type") != "searchResEntry":
                    continue
                for attr, values in (entry.get("raw_attributes") or {}).items():
                    if not attr.lower().startswith(("usercertificate", "usersmimecertificate")):
                        continue
                    for raw in values:
                        try:
                            certs.extend(load_certificates(bytes(raw)))
                        except ValueError:
                            notes.append(
                                f"ldap_garbage_value: {shown(attr)} in {shown(str(entry.get('dn')))}"
                            )
        return LdapStep(certs, notes)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        try:
            self.conn.unbind()
        except LDAPException:
            pass


class LdapLocator:
    """Find the first answering LDAP server of a domain through SRV records."""

    def __init__(
        self,
        dns_client: DnsClient,
        *,
        connect_timeout: float = 2.0,
        receive_timeout: float = 5.0,
        cache_ttl: float = 300.0,
        rng: random.Random | None = None,
        max_entries: int = MAX_ENTRIES,
        session_deadline: float = SESSION_DEADLINE,
        policy: NetPolicy | None = None,
    ):
        #: Outbound fetch policy (direct.netpolicy): SRV targets are the peer's choice, so an address in a
        #: refused range is never connected to unless allow-listed. None = the strict default.
        self.policy = policy if policy is not None else netpolicy.STRICT
        self.max_entries = max_entries
        self.session_deadline = session_deadline
        self.dns = dns_client
        self.connect_timeout = connect_timeout
        self.receive_timeout = receive_timeout
        self.cache_ttl = cache_ttl
        self.rng = rng
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[LdapStep, float]] = {}

    def targets(self, domain: str) -> list[SrvTarget]:
        answer = self.dns.srv(f"_ldap._tcp.{domain}")
        records = [
            SrvTarget(rd.priority, rd.weight, rd.port, rd.target.to_text(omit_final_dot=True))
            for rd in answer.rdatas
        ]
        # RFC 2782: a single target of "." means the service is decidedly not available.
        return [r for r in order_srv(records, self.rng) if r.host not in ("", ".")]

    def open(self, domain: str, notes: list[str]) -> LdapDirectory | None:
        """Connect to the first SRV target that resolves and answers; None when none does."""
        for target in self.targets(domain):
            try:
                addresses = self.dns.addresses(target.host)
            except Exception as exc:
                notes.append(f"ldap_unresolvable: {target.host} ({type(exc).__name__})")
                continue
            if not addresses:
                notes.append(f"ldap_unresolvable: {target.host}")
                continue
            for ip in addresses:
                url = f"ldap://{target.host}:{target.port}"
                # The address our DNS gave is checked and connected to as such (pinned: ldap3 gets the IP,
                # never the name, so nothing resolves it a second time).
                refusal = self.policy.refusal(ip)
                if refusal is not None:
                    notes.append(f"ldap_blocked_address: {url} ({refusal} address, outbound fetch policy)")
                    continue
                try:
                    connect_timeout = netpolicy.cut(self.connect_timeout)
                except NetPolicyError:
                    notes.append(f"ldap_deadline: {url} (the lookup's time budget is spent)")
                    return None
                left = netpolicy.remaining()
                session = self.session_deadline if left is None else min(self.session_deadline, left)
                server = ldap3.Server(
                    ip, port=target.port, get_info=ldap3.DSA, connect_timeout=connect_timeout
                )
                # ldap3 packs receive_timeout into SO_RCVTIMEO as an integer number of seconds
                conn = ldap3.Connection(
                    server,
                    auto_bind=False,
                    receive_timeout=max(1, round(self.receive_timeout)),
                    raise_exceptions=False,
                )
                timer = shutdown_after(session, functools.partial(getattr, conn, "socket", None))  # this conn
                try:
                    if not conn.bind():  # anonymous bind (Certificate Discovery IG; DISC-8, RFC 4513 §5.1.1)
                        notes.append(f"ldap_bind_failed: {url}")
                        timer.cancel()
                        continue
                except LDAPException as exc:
                    notes.append(f"ldap_unreachable: {url} ({type(exc).__name__})")
                    timer.cancel()
                    continue
                bases = list(server.info.naming_contexts or []) if server.info else []
                if not bases:
                    notes.append(f"ldap_no_naming_contexts: {url}")
                    timer.cancel()
                    conn.unbind()
                    continue
                directory = LdapDirectory(conn, [str(b) for b in bases], url, max_entries=self.max_entries)
                directory.timer = timer
                return directory
        return None

    def cached(self, domain: str, value: str) -> LdapStep | None:
        with self._lock:
            hit = self._cache.get((domain, value))
        return hit[0] if hit and time.monotonic() < hit[1] else None

    def remember(self, domain: str, value: str, step: LdapStep) -> None:
        with self._lock:
            self._cache[(domain, value)] = (step, time.monotonic() + self.cache_ttl)

"""A DNS CERT lookup that FAILS (SERVFAIL, or no answer in time) is not "found but unusable" (issue 12 #6):
discovery goes on to the next step and to LDAP (Certificate Discovery for Direct; DCDT's order), against the
real BIND9 (a zone that fails to load answers SERVFAIL) and slapd (publishing a valid certificate)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from direct.discovery import CertificateResolver, DiscoveryConfig
from tests.fixtures.ldap import person
from tests.support.httpfiles import LOOPBACK

pytestmark = [pytest.mark.service("bind9"), pytest.mark.service("slapd")]


@pytest.fixture(scope="module")
def servfail(bind, ldap_servers, pki):
    """``sf.test``: SRV to a slapd that publishes amy's and cy's valid certificates; the address-bound CERT
    names ``amy.sf.test`` and ``bea.sf.test`` are zones that fail to load (BIND answers SERVFAIL)."""
    server = ldap_servers("servfail", suffix="o=sf")
    amy = pki.address("amy@sf.test")
    cy = pki.address("cy@sf.test")
    server.load(
        [
            person(server.suffix, "amy", "amy@sf.test", [amy.cert_der]),
            person(server.suffix, "cy", "cy@sf.test", [cy.cert_der]),
        ]
    )
    bind.zone("sf.test", [f"_ldap._tcp IN SRV 0 0 {server.port} ldap.sf.test.", "ldap IN A 127.0.0.1"])
    bind.broken_zone("amy.sf.test")
    bind.broken_zone("bea.sf.test")
    return amy, cy


def _resolver(nameserver: tuple[str, int], pki, bind, **kwargs) -> CertificateResolver:
    cfg = DiscoveryConfig(
        net_policy=LOOPBACK,
        nameservers=[nameserver],
        anchors=[pki.intermediate.cert],
        authoritative_port=bind.port,  # the authoritative fallback (PIT-13) asks the same BIND: SERVFAIL too
        **kwargs,
    )
    return CertificateResolver(cfg)


def test_servfail_for_the_cert_query_goes_on_to_ldap(bind, pki, servfail) -> None:
    amy, _ = servfail
    reply = dns.query.udp(dns.message.make_query("amy.sf.test", "CERT"), bind.host, port=bind.port, timeout=2)
    assert dns.rcode.to_text(reply.rcode()) == "SERVFAIL"  # the real failure this test is about
    res = _resolver((bind.host, bind.port), pki, bind).lookup("amy@sf.test")
    assert res.error is None, res.error
    assert [(c.cert, c.source, c.binding) for c in res.selected] == [(amy.cert, "ldap", "address")]
    assert any(w.startswith("dns_lookup_failed: amy.sf.test") for w in res.warnings), res.warnings


def test_servfail_and_nothing_in_ldap_is_a_lookup_failure_not_no_certificate(bind, pki, servfail) -> None:
    """Nobody can say that bea publishes no certificate: the DNS failure is the result."""
    res = _resolver((bind.host, bind.port), pki, bind).lookup("bea@sf.test")
    assert res.selected == [] and res.error is not None
    assert res.error.code == "discovery_failed", res.error


@pytest.fixture
def cert_blackhole(bind) -> Iterator[tuple[str, int]]:
    """A DNS server on loopback that relays every query to the BIND fixture except CERT queries, which it
    never answers (a server that times out for exactly the CERT lookup)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def relay() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                continue
            try:
                query = dns.message.from_wire(data)
                if query.question[0].rdtype == dns.rdatatype.CERT:
                    continue
                reply = dns.query.udp(query, bind.host, port=bind.port, timeout=2)
                sock.sendto(reply.to_wire(), peer)
            except Exception:  # noqa: S112 - a test relay: a bad packet is dropped
                continue

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    yield sock.getsockname()
    stop.set()
    thread.join(2)
    sock.close()


def test_cert_query_timeout_goes_on_to_ldap(bind, pki, servfail, cert_blackhole) -> None:
    _, cy = servfail
    res = _resolver(cert_blackhole, pki, bind, dns_timeout=0.3).lookup("cy@sf.test")
    assert res.error is None, res.error
    assert [(c.cert, c.source) for c in res.selected] == [(cy.cert, "ldap")]
    assert any(w.startswith("dns_lookup_failed: cy.sf.test (discovery_timeout)") for w in res.warnings)


def test_cert_query_timeout_and_nothing_in_ldap_stays_a_transient_timeout(
    bind, pki, servfail, cert_blackhole
) -> None:
    res = _resolver(cert_blackhole, pki, bind, dns_timeout=0.3).lookup("nobody@sf.test")
    assert res.error is not None and res.error.code == "discovery_timeout" and res.error.transient

"""The BIND9 fixture serves what a test publishes: a CERT record read back with dnspython (UDP and TCP)."""

from __future__ import annotations

import base64

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

pytestmark = pytest.mark.service("bind9")


def test_cert_record_round_trip(bind, pki) -> None:
    leaf = pki.address("fixture@bindproof.test")
    b64 = base64.b64encode(leaf.cert_der).decode()
    bind.zone("bindproof.test", [f"fixture 300 IN CERT PKIX 0 0 {b64}", "@ IN A 127.0.0.1"])
    query = dns.message.make_query("fixture.bindproof.test.", dns.rdatatype.CERT)
    reply = dns.query.tcp(query, bind.host, port=bind.port, timeout=3)
    rrset = reply.answer[0]
    assert rrset.ttl == 300
    assert rrset[0].certificate_type == 1  # PKIX
    assert rrset[0].certificate == leaf.cert_der
    # republishing replaces the record (reload path)
    bind.zone("bindproof.test", ["@ IN A 127.0.0.2"])
    reply = dns.query.udp(query, bind.host, port=bind.port, timeout=3)
    assert reply.rcode() == dns.rcode.NXDOMAIN


def test_srv_and_a_records(bind) -> None:
    bind.zone("srvproof.test", ["_ldap._tcp 60 IN SRV 0 100 389 ldap.srvproof.test.", "ldap IN A 127.0.0.1"])
    reply = dns.query.udp(
        dns.message.make_query("_ldap._tcp.srvproof.test.", "SRV"), bind.host, port=bind.port, timeout=3
    )
    srv = reply.answer[0][0]
    assert (srv.priority, srv.weight, srv.port, str(srv.target)) == (0, 100, 389, "ldap.srvproof.test.")

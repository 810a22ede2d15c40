"""Pure parts of discovery: RFC 2782 SRV ordering, RFC 4515 filter escaping, nameserver parsing, JSON."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from direct.discovery.config import parse_nameserver
from direct.discovery.ldap import SrvTarget, mail_filter, order_srv


def test_priority_first() -> None:
    records = [SrvTarget(10, 0, 1, "c"), SrvTarget(0, 0, 1, "a"), SrvTarget(5, 50, 1, "b")]
    assert [r.host for r in order_srv(records)] == ["a", "b", "c"]


def test_weight_zero_never_beats_positive_weight() -> None:
    records = [SrvTarget(0, 0, 1, "zero"), SrvTarget(0, 100, 1, "hundred")]
    for seed in range(300):
        assert order_srv(records, random.Random(seed))[0].host == "hundred"


def test_weights_share_load_proportionally() -> None:
    records = [SrvTarget(0, 75, 1, "big"), SrvTarget(0, 25, 1, "small")]
    firsts = Counter(order_srv(records, random.Random(seed))[0].host for seed in range(2000))
    assert 1300 < firsts["big"] < 1700 and firsts["big"] + firsts["small"] == 2000


def test_all_zero_weights_keep_every_target() -> None:
    records = [SrvTarget(0, 0, 1, "x"), SrvTarget(0, 0, 2, "y")]
    assert sorted(r.host for r in order_srv(records)) == ["x", "y"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bob@x.test", "(mail=bob@x.test)"),
        ("*", "(mail=\\2a)"),
        ("*)(objectClass=*", "(mail=\\2a\\29\\28objectClass=\\2a)"),
        ("a\\b", "(mail=a\\5cb)"),
        ("nul\x00", "(mail=nul\\00)"),
    ],
)
def test_mail_filter_escapes_rfc4515(value: str, expected: str) -> None:
    assert mail_filter(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("ns.example", ("ns.example", 53)),
        ("[::1]:53", ("::1", 53)),
        ("::1", ("::1", 53)),
    ],
)
def test_parse_nameserver(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["", "host:", "host:abc", "host:0", "host:70000", ":53"])
def test_parse_nameserver_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(text)


class _LyingDns:
    """A real UDP DNS server on loopback that answers every CERT query with a record owned by ANOTHER name
    (an off-path-looking or misconfigured answer), optionally after a CNAME that does lead there."""

    def __init__(self, cert_der: bytes, *, via_cname: bool) -> None:
        import socket
        import threading

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.cert_der = cert_der
        self.via_cname = via_cname
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import dns.message
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset

        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            qname = query.question[0].name
            other = dns.name.from_text("victim.example.")
            if self.via_cname:
                reply.answer.append(dns.rrset.from_text(qname, 300, "IN", "CNAME", other.to_text()))
            import base64

            cert = f"PKIX 0 0 {base64.b64encode(self.cert_der).decode()}"
            reply.answer.append(dns.rrset.from_text(other, 300, "IN", "CERT", cert))
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("via_cname", [False, True])
def test_dns_answer_records_must_belong_to_the_queried_name(pki, via_cname: bool) -> None:
    """CERT records in the answer section are used only when their owner is the queried name or a CNAME
    target reached from it (RFC 1034 §4.3.2); an answer for some other name is not an answer."""

    from direct.discovery.dns import DnsClient

    server = _LyingDns(pki.address("x@victim.example").cert_der, via_cname=via_cname)
    try:
        answer = DnsClient([("127.0.0.1", server.port)], timeout=2).cert("bob.asked.example")
    finally:
        server.close()
    assert len(answer.rdatas) == (1 if via_cname else 0)


def test_parse_hostport_needs_a_port_unless_defaulted() -> None:
    """One HOST:PORT parser for --nameserver and --listen (the --listen one passed "[::1]" with its
    brackets on to the socket layer)."""
    from direct.discovery.config import parse_hostport

    assert parse_hostport("[::1]:2525") == ("::1", 2525)
    assert parse_hostport("127.0.0.1:25") == ("127.0.0.1", 25)
    assert parse_hostport("mx.example", 25) == ("mx.example", 25)
    for bad in ("mx.example", "host:port", ":25", "[::1]", "h:70000"):
        with pytest.raises(ValueError):
            parse_hostport(bad)

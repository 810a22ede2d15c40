"""Discovery edge cases against real BIND9 / slapd / HTTP: injection, garbage, IPKIX limits, DNS timeouts,
caching, and the patient (PUBLIC) trust policy."""

from __future__ import annotations

import base64
import socket
import threading

import pytest

from direct import certgen
from direct.discovery import CertificateResolver, DiscoveryConfig
from direct.discovery.ldap import LdapLocator
from direct.trust.policy import TrustPolicy
from tests.fixtures.ldap import person
from tests.support.httpfiles import LOOPBACK, HttpFiles

pytestmark = [pytest.mark.service("bind9"), pytest.mark.service("slapd")]


@pytest.fixture(scope="module")
def http():
    files = HttpFiles()
    yield files
    files.close()


def _resolver(bind, pki, **kwargs) -> CertificateResolver:
    # the test PKI's leaves are issued by its intermediate, which nobody publishes: anchor it directly
    cfg = DiscoveryConfig(
        net_policy=LOOPBACK, nameservers=[(bind.host, bind.port)], anchors=[pki.intermediate.cert], **kwargs
    )
    return CertificateResolver(cfg)


def _pkix(owner: str, der: bytes) -> str:
    return f"{owner} 300 IN CERT PKIX 0 0 ( {base64.b64encode(der).decode()} )"


def _ipkix(owner: str, url: str) -> str:
    return f"{owner} 300 IN CERT IPKIX 0 0 {base64.b64encode(url.encode()).decode()}"


# --- LDAP filter injection ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inj(bind, ldap_servers, pki):
    server = ldap_servers("injection", suffix="o=inj")
    alice = pki.address("alice@inj.test")
    server.load([person(server.suffix, "alice", "alice@inj.test", [alice.cert_der])])
    bind.zone("inj.test", [f"_ldap._tcp IN SRV 0 0 {server.port} ldap.inj.test.", "ldap IN A 127.0.0.1"])
    return server, alice


def test_wildcard_local_part_does_not_match_other_entries(inj, bind, pki) -> None:
    _, alice = inj
    resolver = _resolver(bind, pki)
    assert [c.cert for c in resolver.lookup("alice@inj.test").selected] == [alice.cert]
    for probe in ("*@inj.test", "a*@inj.test", "*lice@inj.test"):
        res = resolver.lookup(probe)
        assert res.candidates == [] and res.error.code == "no_certificate", probe


def test_filter_metacharacters_are_escaped_on_the_wire(inj, bind) -> None:
    """Even values the address parser would refuse are escaped by the LDAP layer itself (RFC 4515)."""
    from direct.discovery.dns import DnsClient

    locator = LdapLocator(DnsClient([(bind.host, bind.port)]), policy=LOOPBACK)
    notes: list[str] = []
    directory = locator.open("inj.test", notes)
    assert directory is not None and directory.bases == ["o=inj"]
    try:
        assert len(directory.search("alice@inj.test").certs) == 1
        for evil in ("*", "*)(objectClass=*", "alice@inj.test)(|(mail=*", "\\2a", "*@inj.test"):
            assert directory.search(evil).certs == [], evil
    finally:
        directory.close()


def test_address_with_crlf_never_reaches_dns_or_ldap(bind, pki) -> None:
    res = _resolver(bind, pki).lookup("alice@inj.test\r\nmail=*")
    assert res.error.code == "bad_address" and res.candidates == []


# --- garbage and IPKIX ---------------------------------------------------------------------------------
def test_garbage_cert_record_is_reported_and_skipped(bind, pki) -> None:
    good = pki.domain("garbage.test")
    bind.zone(
        "garbage.test",
        [_pkix("bob", b"\x30\x82\x01\x00 this is not a certificate"), _pkix("@", good.cert_der)],
    )
    res = _resolver(bind, pki).lookup("bob@garbage.test")
    assert [(c.cert, c.binding) for c in res.selected] == [(good.cert, "domain")]
    assert any(w.startswith("dns_garbage_cert: bob.garbage.test") for w in res.warnings)


def test_ipkix_url_with_control_characters_is_garbage_not_printed(bind, pki) -> None:
    """An IPKIX record is peer data: a "URL" carrying ESC sequences and CR/LF was fetched and then echoed
    raw into the warnings that ``bbdirect lookup`` prints (terminal/log injection). It is now refused as
    not-a-URL and nothing of it is shown unescaped."""
    evil = "http://127.0.0.1:9/x\x1b[2J\r\nnote: all certificates trusted"
    bind.zone("ipkixctl.test", [_ipkix("eve", evil)])
    res = _resolver(bind, pki).lookup("eve@ipkixctl.test")
    assert res.error.code == "no_certificate"
    assert any(w.startswith("dns_garbage_cert: eve.ipkixctl.test") for w in res.warnings)
    assert not any(ch in w for w in res.warnings for ch in "\x1b\r\n")


def test_certificate_with_invalid_version_in_dns_or_ldap_is_garbage_not_a_crash(bind, pki) -> None:
    """cryptography raises x509.InvalidVersion (not a ValueError) for a certificate whose version field is
    99: a PKIX record carrying one made lookup() raise instead of reporting a garbage record."""
    good = pki.domain("badversion.test")
    broken = pki.address("bob@badversion.test").cert_der.replace(
        bytes.fromhex("a003020102"), bytes.fromhex("a003020163"), 1
    )
    bind.zone("badversion.test", [_pkix("bob", broken), _pkix("@", good.cert_der)])
    res = _resolver(bind, pki).lookup("bob@badversion.test")
    assert [(c.cert, c.binding) for c in res.selected] == [(good.cert, "domain")]
    assert any(w.startswith("dns_garbage_cert: bob.badversion.test") for w in res.warnings)


def test_ipkix_record_is_fetched(bind, pki, http) -> None:
    leaf = pki.address("carol@ipkix.test")
    url = http.put("/ipkix/carol.cer", leaf.cert_der)
    bind.zone("ipkix.test", [_ipkix("carol", url)])
    res = _resolver(bind, pki).lookup("carol@ipkix.test")
    assert [c.cert for c in res.selected] == [leaf.cert]


def test_ipkix_slow_and_huge_urls_are_cut_off(bind, pki, http) -> None:
    slow = http.put("/ipkix/slow.cer", b"", delay=5.0)
    huge = http.put("/ipkix/huge.cer", size=5_000_000)
    bind.zone("ipkix2.test", [_ipkix("slow", slow), _ipkix("huge", huge)])
    resolver = _resolver(bind, pki, ipkix_timeout=0.5, ipkix_deadline=1.0, ipkix_max_bytes=65_536)
    slow_res = resolver.lookup("slow@ipkix2.test")
    assert slow_res.error.code == "no_certificate"
    assert any(w.startswith(f"ipkix_unavailable: {slow} (timeout)") for w in slow_res.warnings)
    huge_res = resolver.lookup("huge@ipkix2.test")
    assert huge_res.error.code == "no_certificate"
    assert any(w.startswith(f"ipkix_unavailable: {huge} (too_large)") for w in huge_res.warnings)


# --- DNS server that does not answer ------------------------------------------------------------------
@pytest.fixture
def silent_dns():
    """A UDP socket on loopback that swallows every query."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def drain() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                sock.recvfrom(4096)
            except OSError:
                continue

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    yield sock.getsockname()
    stop.set()
    t.join(2)
    sock.close()


def test_dns_timeout_is_a_transient_discovery_error(silent_dns, pki) -> None:
    resolver = CertificateResolver(
        DiscoveryConfig(
            net_policy=LOOPBACK, nameservers=[silent_dns], dns_timeout=0.3, anchors=[pki.intermediate.cert]
        )
    )
    res = resolver.lookup("bob@timeout.test")
    assert res.error.code == "discovery_timeout" and res.error.transient
    assert res.selected == []


def test_next_nameserver_is_tried_after_a_timeout(silent_dns, bind, pki) -> None:
    leaf = pki.address("dave@fallback.test")
    bind.zone("fallback.test", [_pkix("dave", leaf.cert_der)])
    resolver = CertificateResolver(
        DiscoveryConfig(
            net_policy=LOOPBACK,
            nameservers=[silent_dns, (bind.host, bind.port)],
            dns_timeout=0.3,
            anchors=[pki.intermediate.cert],
        )
    )
    assert [c.cert for c in resolver.lookup("dave@fallback.test").selected] == [leaf.cert]


# --- caching ------------------------------------------------------------------------------------------
def test_ttl_cache_and_negative_cache(bind, pki) -> None:
    first = pki.address("erin@cache.test")
    bind.zone("cache.test", ["@ IN A 127.0.0.1"])
    resolver = _resolver(bind, pki)
    assert resolver.lookup("erin@cache.test").error.code == "no_certificate"
    bind.zone("cache.test", [_pkix("erin", first.cert_der)])
    # the negative answer is remembered (short negative TTL), a fresh resolver sees the record
    assert resolver.lookup("erin@cache.test").error.code == "no_certificate"
    assert [c.cert for c in _resolver(bind, pki).lookup("erin@cache.test").selected] == [first.cert]
    resolver.dns.clear()
    assert [c.cert for c in resolver.lookup("erin@cache.test").selected] == [first.cert]
    queries = resolver.dns.stats["queries"]
    resolver.lookup("erin@cache.test")  # positive answer served from the TTL cache
    assert resolver.dns.stats["queries"] == queries


# --- trust policies -----------------------------------------------------------------------------------
def test_public_policy_accepts_unanchored_but_reports_it(bind, pki) -> None:
    stranger_ca = certgen.make_ca("Stranger HISP CA")
    leaf = certgen.make_leaf(stranger_ca, address="frank@public.test")
    expired = certgen.make_leaf(
        stranger_ca,
        address="gina@public.test",
        not_before=leaf.cert.not_valid_before_utc.replace(year=2001),
        not_after=leaf.cert.not_valid_before_utc.replace(year=2002),
    )
    bind.zone("public.test", [_pkix("frank", leaf.cert_der), _pkix("gina", expired.cert_der)])
    resolver = _resolver(bind, pki)
    clinician = resolver.lookup("frank@public.test", TrustPolicy.TRUSTED)
    assert clinician.selected == [] and clinician.candidates[0].reason == "untrusted"
    patient = resolver.lookup("frank@public.test", TrustPolicy.PUBLIC)
    assert [c.cert for c in patient.selected] == [leaf.cert]
    assert patient.selected[0].trusted is False and patient.trusted is False
    # PUBLIC still enforces validity
    assert resolver.lookup("gina@public.test", TrustPolicy.PUBLIC).candidates[0].reason == "expired"


def test_wrong_key_usage_and_wrong_binding_are_unusable(bind, pki) -> None:
    sign_only = pki.wrong_key_usage("hank@ku.test")
    someone_else = pki.address("ivan@ku.test")
    bind.zone("ku.test", [_pkix("hank", sign_only.cert_der), _pkix("judy", someone_else.cert_der)])
    resolver = _resolver(bind, pki)
    assert resolver.lookup("hank@ku.test").candidates[0].reason == "wrong_key_usage"
    judy = resolver.lookup("judy@ku.test")
    assert judy.candidates[0].reason == "not_bound" and judy.error.code == "no_usable_certificate"


# --- dead LDAP servers --------------------------------------------------------------------------------
@pytest.fixture
def stalled_ldap():
    """A TCP listener that accepts connections and never says a word (a hung LDAP server)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_refusing_and_stalled_ldap_servers_are_skipped(bind, ldap_servers, pki, stalled_ldap) -> None:
    from tests.support.services import free_port

    server = ldap_servers("dead-servers", suffix="o=live")
    leaf = pki.address("kate@deadldap.test")
    server.load([person(server.suffix, "kate", "kate@deadldap.test", [leaf.cert_der])])
    refused = free_port()
    bind.zone(
        "deadldap.test",
        [
            f"_ldap._tcp IN SRV 0 0 {refused} ldap.deadldap.test.",
            f"_ldap._tcp IN SRV 1 0 {stalled_ldap} ldap.deadldap.test.",
            f"_ldap._tcp IN SRV 2 0 {server.port} ldap.deadldap.test.",
            "ldap IN A 127.0.0.1",
        ],
    )
    resolver = _resolver(bind, pki, ldap_connect_timeout=1.0, ldap_receive_timeout=1.0)
    res = resolver.lookup("kate@deadldap.test")
    assert [(c.cert, c.source) for c in res.selected] == [(leaf.cert, "ldap")]
    dead = [w for w in res.warnings if w.startswith(("ldap_unreachable", "ldap_bind_failed"))]
    assert len(dead) == 2, res.warnings


class _CertServfailResolver:
    """A real UDP resolver on loopback in front of BIND that answers SERVFAIL to every CERT query and
    forwards everything else (PowerDNS recursor behaviour, pdns #3312; direct.md PIT-13)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.upstream = upstream
        self.cert_queries = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import dns.message
        import dns.query
        import dns.rcode
        import dns.rdatatype

        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            if query.question[0].rdtype == dns.rdatatype.CERT:
                self.cert_queries += 1
                reply = dns.message.make_response(query)
                reply.set_rcode(dns.rcode.SERVFAIL)
            else:
                reply = dns.query.udp(query, self.upstream[0], port=self.upstream[1], timeout=2)
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


def test_servfail_on_cert_falls_back_to_the_authoritative_servers(bind, pki) -> None:
    """PIT-13 / DISC-5: the configured resolver SERVFAILs on CERT; discovery finds the zone's NS records
    through it, resolves them, and asks the authoritative server (the real BIND) directly, as the Java RI's
    DNSCertificateStore does. Without the fallback the lookup ended in discovery_failed."""
    leaf = pki.address("bob@pit13.test")
    bind.zone("pit13.test", [_pkix("bob", leaf.cert_der)])
    proxy = _CertServfailResolver((bind.host, bind.port))
    try:
        cfg = DiscoveryConfig(
            net_policy=LOOPBACK,
            nameservers=[("127.0.0.1", proxy.port)],
            anchors=[pki.intermediate.cert],
            authoritative_port=bind.port,  # real authoritative servers listen on 53; the fixture does not
        )
        res = CertificateResolver(cfg).lookup("bob@pit13.test")
        assert proxy.cert_queries >= 1
        assert [c.cert for c in res.selected] == [leaf.cert], res.error
        off = CertificateResolver(
            DiscoveryConfig(
                net_policy=LOOPBACK,
                nameservers=[("127.0.0.1", proxy.port)],
                anchors=[pki.intermediate.cert],
                authoritative_fallback=False,
            )
        ).lookup("bob@pit13.test")
        assert off.error.code == "discovery_failed"
    finally:
        proxy.close()


def test_ldap_search_is_size_limited_and_keeps_what_arrived(bind, ldap_servers, pki) -> None:
    """A directory with many entries for one mail value: the search asks the server for at most
    ``max_entries`` (RFC 4511 §4.5.1 sizeLimit). slapd then answers sizeLimitExceeded with the entries it
    sent; those certificates are kept and the limit is reported (the result used to be discarded whole)."""
    from direct.discovery.dns import DnsClient

    server = ldap_servers("sizelimit", suffix="o=many")
    certs = [pki.address("crowd@many.test") for _ in range(5)]
    server.load(
        [person(server.suffix, f"crowd{i}", "crowd@many.test", [c.cert_der]) for i, c in enumerate(certs)]
    )
    bind.zone("many.test", [f"_ldap._tcp IN SRV 0 0 {server.port} ldap.many.test.", "ldap IN A 127.0.0.1"])
    locator = LdapLocator(DnsClient([(bind.host, bind.port)]), policy=LOOPBACK, max_entries=3)
    notes: list[str] = []
    directory = locator.open("many.test", notes)
    assert directory is not None
    try:
        step = directory.search("crowd@many.test")
    finally:
        directory.close()
    assert len(step.certs) == 3
    assert any(n.startswith("ldap_size_limit:") for n in step.notes)
    assert (
        len(
            LdapLocator(DnsClient([(bind.host, bind.port)]), policy=LOOPBACK)
            .open("many.test", [])
            .search("crowd@many.test")
            .certs
        )
        == 5
    )


def test_trickling_ldap_server_is_cut_off_by_the_session_deadline(bind) -> None:
    """An SRV target that answers the bind one byte at a time: every read is within the receive timeout,
    so only a deadline on the whole LDAP session stops it (a patient's send waited for ever). The target
    is abandoned like an unreachable one."""
    from direct.discovery.dns import DnsClient

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"\x30\x84\x00\x00\xff\xff")  # an LDAPMessage "65535 bytes long" ...
            while not stop.is_set():  # ... that never ends
                try:
                    conn.sendall(b"\x04")
                except OSError:
                    return
                stop.wait(0.3)

    threading.Thread(target=serve, daemon=True).start()
    port = listener.getsockname()[1]
    bind.zone("slowldap.test", [f"_ldap._tcp IN SRV 0 0 {port} ldap.slowldap.test.", "ldap IN A 127.0.0.1"])
    locator = LdapLocator(
        DnsClient([(bind.host, bind.port)]), policy=LOOPBACK, receive_timeout=1, session_deadline=2
    )
    outcome: list[object] = []
    notes: list[str] = []
    worker = threading.Thread(
        target=lambda: outcome.append(locator.open("slowldap.test", notes)), daemon=True
    )
    worker.start()
    worker.join(20)
    stop.set()
    listener.close()
    assert outcome == [None], notes
    assert any(n.startswith(("ldap_unreachable:", "ldap_bind_failed:")) for n in notes)

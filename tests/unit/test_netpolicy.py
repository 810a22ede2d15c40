"""The outbound fetch policy (direct.netpolicy; issue 12, finding 3): which addresses are refused, the
allow-list, the pinned connection and the lookup budget."""

from __future__ import annotations

import socket
import time

import pytest

from direct import netpolicy
from direct.netpolicy import ALLOW_ENV, NetPolicy
from direct.trust.fetch import FetchError, HttpFetcher
from tests.support.httpfiles import HttpFiles


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "fe80::1",
        "fd00::1",  # ULA
        "100.64.0.1",  # CGNAT
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::808:808",  # NAT64 of a public address: still refused
        "224.0.0.1",
        "ff02::1",
        "0.0.0.0",
        "::",
        "240.0.0.1",
        "255.255.255.255",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "198.18.0.1",
        "192.0.2.1",
    ],
)
def test_internal_and_reserved_addresses_are_refused_by_default(address: str) -> None:
    assert NetPolicy().refusal(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert NetPolicy().refusal(address) is None


def test_allow_list_opens_only_what_it_names() -> None:
    policy = NetPolicy.from_strings(["127.0.0.0/8", "10.20.0.0/16"])
    assert policy.refusal("127.0.0.1") is None and policy.refusal("::ffff:127.0.0.1") is None
    assert policy.refusal("10.20.3.4") is None
    assert policy.refusal("10.21.0.1") is not None and policy.refusal("::1") is not None


def test_allow_list_from_environment_and_bad_entries(monkeypatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, " 192.168.0.0/16 ,fd00::/8")
    assert NetPolicy.from_env().refusal("192.168.7.7") is None
    assert NetPolicy.from_env().refusal("fd12::1") is None
    with pytest.raises(ValueError, match="CIDR"):
        NetPolicy.from_strings(["10.0.0.0/33"])


def test_fetch_to_loopback_refused_by_default_and_allowed_when_listed(monkeypatch) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    files = HttpFiles()
    try:
        url = files.put("/x", b"hello")
        with pytest.raises(FetchError) as err:
            HttpFetcher(timeout=1).get(url)
        assert err.value.code == "blocked_address" and files.hits.get("/x", 0) == 0
        assert HttpFetcher(timeout=1, policy=NetPolicy.from_strings(["127.0.0.1/32"])).get(url) == b"hello"
    finally:
        files.close()


def test_connection_is_pinned_to_the_checked_address(monkeypatch) -> None:
    """DNS rebinding: the name is resolved ONCE, checked, and the connection goes to that address. A
    resolver that answers the allowed address first and another one afterwards is asked only once."""
    files = HttpFiles()
    real = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.example":
            asked.append(host)
            target = "127.0.0.1" if len(asked) == 1 else "127.0.0.2"  # second answer: elsewhere
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (target, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        files.put("/pinned", b"pinned")
        fetcher = HttpFetcher(timeout=1, policy=NetPolicy.from_strings(["127.0.0.1/32"]))
        assert fetcher.get(f"http://rebind.example:{files.port}/pinned") == b"pinned"
        assert asked == ["rebind.example"]
    finally:
        files.close()


def test_budget_cuts_timeouts_and_expires() -> None:
    assert netpolicy.remaining() is None and netpolicy.cut(5.0) == 5.0
    with netpolicy.budget(0.2):
        assert netpolicy.cut(5.0) <= 0.2
        with netpolicy.budget(10):  # a nested budget never extends the outer one
            assert netpolicy.remaining() <= 0.2
        time.sleep(0.25)
        assert netpolicy.expired()
        with pytest.raises(netpolicy.DeadlineExceeded):
            netpolicy.cut(5.0)
    assert netpolicy.remaining() is None


def _tls_server(tmp_path, hostname: str):
    """An HTTPS server on 127.0.0.1 whose certificate names ``hostname``; returns (server, CA PEM path)."""
    import datetime as dt
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from direct import certgen

    ca = certgen.make_ca("TLS Test CA")
    key = certgen.new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca.key, hashes.SHA256())
    )
    cert_path, key_path, ca_path = tmp_path / "srv.pem", tmp_path / "srv.key", tmp_path / "ca.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ca_path.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = self.headers.get("Host", "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, str(ca_path)


def test_https_to_the_pinned_address_still_verifies_the_host_name(tmp_path, monkeypatch) -> None:
    """Pinning connects to the checked IP, yet TLS is verified for (and SNI names) the URL's host: a trust
    bundle served over https on loopback is fetched; the same server under another name is refused."""
    real = socket.getaddrinfo

    def names(host, port, *args, **kwargs):
        if host in ("bundles.test", "other.test"):
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", names)
    server, ca = _tls_server(tmp_path, "bundles.test")
    port = server.server_address[1]
    fetcher = HttpFetcher(timeout=2, policy=NetPolicy.from_strings(["127.0.0.1/32"]), ca_certs=ca)
    try:
        assert fetcher.get(f"https://bundles.test:{port}/b.p7b") == f"bundles.test:{port}".encode()
        with pytest.raises(FetchError) as err:
            fetcher.get(f"https://other.test:{port}/b.p7b")
        assert err.value.code == "unreachable"  # certificate does not name other.test
    finally:
        server.shutdown()
        server.server_close()


def test_the_cli_and_sidecar_read_the_same_allow_list(monkeypatch) -> None:
    """Fixed contract: BBDIRECT_DIRECT_ALLOW_NETWORKS is honoured by ``bbdirect send`` (DiscoveryConfig's
    default, which ``send`` uses) and by ``serve``/``worker`` (the ``direct.allow_networks`` setting)."""
    from direct.discovery import DiscoveryConfig
    from fhir_bridge.config import ConfigError, load_settings
    from fhir_bridge.wiring import net_policy

    monkeypatch.setenv(ALLOW_ENV, "10.9.0.0/16,127.0.0.0/8")
    assert DiscoveryConfig().net_policy.refusal("10.9.1.1") is None
    assert DiscoveryConfig().net_policy.refusal("10.8.1.1") is not None
    settings = load_settings(env={ALLOW_ENV: "10.9.0.0/16,127.0.0.0/8"})
    assert settings.direct_allow_networks == ["10.9.0.0/16", "127.0.0.0/8"]
    assert net_policy(settings).refusal("127.0.0.1") is None and net_policy(settings).lookup_deadline == 10.0
    assert net_policy(load_settings(env={})).refusal("127.0.0.1") is not None
    with pytest.raises(ConfigError, match="allow_networks"):
        load_settings(env={ALLOW_ENV: "not-a-network"})

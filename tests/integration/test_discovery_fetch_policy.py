"""The outbound fetch policy (issue 12, finding 3) on the real pieces: BIND9 publishes the records, slapd and
a loopback HTTP server are the "internal" services a hostile recipient domain points us at.

A patient who types an address on a domain they control chooses the IPKIX URL of its CERT record, the AIA and
CRL URLs of the certificate it returns and the ``_ldap._tcp`` SRV target: all of them pointed at 127.0.0.1
were fetched or connected to. Now internal ranges are refused unless allow-listed
(``direct.allow_networks``), at most 2 URLs are tried per certificate, and a lookup has a total deadline.
"""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import AuthorityInformationAccessOID

from direct import certgen
from direct.discovery import CertificateResolver, DiscoveryConfig
from direct.netpolicy import ALLOW_ENV, NetPolicy
from tests.fixtures.ldap import person
from tests.support.httpfiles import LOOPBACK, HttpFiles

pytestmark = [pytest.mark.service("bind9"), pytest.mark.service("slapd")]


@pytest.fixture(autouse=True)
def _no_ambient_allow_list(monkeypatch) -> None:
    """The default policy reads BBDIRECT_DIRECT_ALLOW_NETWORKS: these tests judge the default itself."""
    monkeypatch.delenv(ALLOW_ENV, raising=False)


@pytest.fixture(scope="module")
def http():
    files = HttpFiles()
    yield files
    files.close()


def _resolver(bind, anchors, policy: NetPolicy | None = None, **kwargs) -> CertificateResolver:
    if policy is not None:
        kwargs["net_policy"] = policy
    return CertificateResolver(
        DiscoveryConfig(nameservers=[(bind.host, bind.port)], anchors=anchors, **kwargs)
    )


def _pkix(owner: str, der: bytes) -> str:
    return f"{owner} 300 IN CERT PKIX 0 0 ( {base64.b64encode(der).decode()} )"


def _ipkix(owner: str, url: str) -> str:
    return f"{owner} 300 IN CERT IPKIX 0 0 {base64.b64encode(url.encode()).decode()}"


def _with_urls(
    leaf: certgen.Issued, issuer: certgen.Issued, *, aia: Sequence[str] = (), crl: Sequence[str] = ()
) -> x509.Certificate:
    """``leaf`` re-issued with several AIA caIssuers and/or CRL distribution point URLs."""
    c = leaf.cert
    b = (
        x509.CertificateBuilder()
        .subject_name(c.subject)
        .issuer_name(c.issuer)
        .public_key(c.public_key())
        .serial_number(c.serial_number)
        .not_valid_before(c.not_valid_before_utc)
        .not_valid_after(c.not_valid_after_utc)
    )
    for ext in c.extensions:
        b = b.add_extension(ext.value, ext.critical)
    if aia:
        b = b.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(u)
                    )
                    for u in aia
                ]
            ),
            False,
        )
    if crl:
        b = b.add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(u)], None, None, None) for u in crl]
            ),
            False,
        )
    return b.sign(issuer.key, hashes.SHA256())


# --- internal targets refused by default ------------------------------------------------------------------
def test_ipkix_url_on_loopback_is_not_fetched_without_the_allow_list(bind, pki, http) -> None:
    leaf = pki.address("ivy@ssrf-ipkix.test")
    url = http.put("/ssrf/ivy.cer", leaf.cert_der)
    bind.zone("ssrf-ipkix.test", [_ipkix("ivy", url)])

    res = _resolver(bind, [pki.intermediate.cert]).lookup("ivy@ssrf-ipkix.test")
    assert http.hits.get("/ssrf/ivy.cer", 0) == 0  # nothing was sent to 127.0.0.1
    assert res.selected == [] and res.candidates == []
    assert res.error is not None and res.error.code == "fetch_refused"
    assert "outbound fetch policy" in res.error.message
    assert any(w.startswith(f"ipkix_unavailable: {url}") and "blocked_address" in w for w in res.warnings)

    allowed = _resolver(bind, [pki.intermediate.cert], LOOPBACK).lookup("ivy@ssrf-ipkix.test")
    assert [c.cert for c in allowed.selected] == [leaf.cert], allowed.error
    assert http.hits["/ssrf/ivy.cer"] == 1


def test_ldap_srv_target_on_loopback_is_not_connected_to(bind, pki) -> None:
    """``_ldap._tcp`` SRV made us open TCP to any loopback port: a listener there sees no connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            accepted.append(conn)
            conn.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    port = listener.getsockname()[1]
    bind.zone("ssrf-ldap.test", [f"_ldap._tcp IN SRV 0 0 {port} ldap.ssrf-ldap.test.", "ldap IN A 127.0.0.1"])
    try:
        res = _resolver(bind, [pki.intermediate.cert]).lookup("ann@ssrf-ldap.test")
    finally:
        stop.set()
        watcher.join(2)
        listener.close()
    assert accepted == []
    assert any(w.startswith("ldap_blocked_address: ldap://ldap.ssrf-ldap.test") for w in res.warnings)
    assert res.error is not None and res.error.code == "fetch_refused"


def test_ldap_on_loopback_is_used_when_allow_listed(bind, ldap_servers, pki) -> None:
    server = ldap_servers("policy", suffix="o=policy")
    leaf = pki.address("lea@policy-ldap.test")
    server.load([person(server.suffix, "lea", "lea@policy-ldap.test", [leaf.cert_der])])
    bind.zone(
        "policy-ldap.test",
        [f"_ldap._tcp IN SRV 0 0 {server.port} ldap.policy-ldap.test.", "ldap IN A 127.0.0.1"],
    )
    res = _resolver(bind, [pki.intermediate.cert], LOOPBACK).lookup("lea@policy-ldap.test")
    assert [c.cert for c in res.selected] == [leaf.cert], res.error


# --- at most 2 URLs per certificate ------------------------------------------------------------------------
def test_four_aia_urls_only_two_are_tried(bind, http) -> None:
    root = certgen.make_ca("Cap Root")
    inter = certgen.make_ca("Cap Inter", issuer=root)
    leaf = certgen.make_leaf(inter, address="abe@aia-cap.test")
    urls = [http.url(f"/cap/aia{i}.cer") for i in range(4)]  # all 404: every one would be tried
    cert = _with_urls(leaf, inter, aia=urls)
    bind.zone("aia-cap.test", [_pkix("abe", cert.public_bytes(serialization.Encoding.DER))])

    res = _resolver(bind, [root.cert], LOOPBACK).lookup("abe@aia-cap.test")
    tried = [u for u in urls if http.hits.get(u.split(str(http.port), 1)[1], 0)]
    assert tried == urls[:2]
    assert res.selected == [] and res.error.code == "no_usable_certificate"
    assert [c.reason for c in res.candidates] == ["untrusted"]  # the issuer was never found


def test_four_crl_urls_only_two_are_tried(bind, http) -> None:
    root = certgen.make_ca("CrlCap Root")
    leaf = certgen.make_leaf(root, address="cid@crl-cap.test")
    urls = [http.url(f"/cap/crl{i}.crl") for i in range(4)]
    cert = _with_urls(leaf, root, crl=urls)
    bind.zone("crl-cap.test", [_pkix("cid", cert.public_bytes(serialization.Encoding.DER))])

    res = _resolver(bind, [root.cert], LOOPBACK).lookup("cid@crl-cap.test")
    tried = [u for u in urls if http.hits.get(u.split(str(http.port), 1)[1], 0)]
    assert tried == urls[:2]
    assert [c.cert for c in res.selected] == [cert]  # an unreachable CRL stays a soft failure
    assert any("crl_urls_capped: 2 of 4" in w for w in res.warnings)


# --- one total deadline per lookup -------------------------------------------------------------------------
def test_slow_ipkix_peer_ends_the_lookup_at_its_deadline(bind, pki, http) -> None:
    url = http.put("/slow/ipkix.cer", pki.address("sly@slow-ipkix.test").cert_der, delay=4.0)
    bind.zone("slow-ipkix.test", [_ipkix("sly", url)])
    policy = NetPolicy(allow=LOOPBACK.allow, lookup_deadline=1.0)
    res = _resolver(bind, [pki.intermediate.cert], policy).lookup("sly@slow-ipkix.test")
    assert res.error is not None and res.error.code == "discovery_deadline"
    assert res.error.transient and res.selected == []


def test_slow_aia_peers_end_the_lookup_at_its_deadline(bind, http) -> None:
    """Four slow AIA URLs held one web request for 20 s: now two are tried, within the lookup's budget."""
    root = certgen.make_ca("Slow Root")
    inter = certgen.make_ca("Slow Inter", issuer=root)
    leaf = certgen.make_leaf(inter, address="sam@slow-aia.test")
    der = inter.cert.public_bytes(serialization.Encoding.DER)
    urls = [http.put(f"/slow/aia{i}.cer", der, delay=4.0) for i in range(4)]
    cert = _with_urls(leaf, inter, aia=urls)
    bind.zone("slow-aia.test", [_pkix("sam", cert.public_bytes(serialization.Encoding.DER))])
    policy = NetPolicy(allow=LOOPBACK.allow, lookup_deadline=1.5)
    res = _resolver(bind, [root.cert], policy).lookup("sam@slow-aia.test")
    assert res.error is not None and res.error.code == "discovery_deadline"
    assert res.selected == []


def test_sidecar_resolver_follows_direct_allow_networks(bind, pki, http) -> None:
    """``serve`` and ``worker`` build their resolver from the settings: loopback refused by default, allowed
    by ``direct.allow_networks``; ``direct.lookup_deadline`` is the lookup's budget."""
    from fhir_bridge.config import load_settings
    from fhir_bridge.wiring import discovery_resolver

    leaf = pki.address("sid@sidecar-ipkix.test")
    url = http.put("/sidecar/sid.cer", leaf.cert_der)
    bind.zone("sidecar-ipkix.test", [_ipkix("sid", url)])
    anchor = pki.write_cert(pki.intermediate.cert, "sidecar-policy-anchor")
    base = {"direct_dns_server": bind.nameserver, "direct_trust_anchors": [str(anchor)]}

    strict = discovery_resolver(load_settings(env={}, **base)).lookup("sid@sidecar-ipkix.test")
    assert strict.error is not None and strict.error.code == "fetch_refused"
    assert http.hits.get("/sidecar/sid.cer", 0) == 0

    settings = load_settings(env={ALLOW_ENV: "127.0.0.0/8"}, direct_lookup_deadline=5.0, **base)
    resolver = discovery_resolver(settings)
    assert resolver.config.net_policy.lookup_deadline == 5.0
    allowed = resolver.lookup("sid@sidecar-ipkix.test")
    assert [c.cert for c in allowed.selected] == [leaf.cert] and allowed.trusted, allowed.error

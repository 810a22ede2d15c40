"""Two trust bundles served over real HTTP with different refresh intervals, one failing: the store keeps
the failing bundle's last good anchors, reports the failure, refreshes on its own schedule, and the resolver
trusts recipients through the bundles a local domain is scoped to."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from direct import certgen
from direct.discovery import CertificateResolver, DiscoveryConfig
from direct.trust.bundles import TrustBundle, TrustStore
from direct.trust.fetch import HttpFetcher
from tests.support.httpfiles import LOOPBACK, HttpFiles

pytestmark = pytest.mark.service("bind9")


@pytest.fixture(scope="module")
def http():
    files = HttpFiles()
    yield files
    files.close()


@pytest.fixture(scope="module")
def communities():
    return {"a": certgen.make_ca("Community A Anchor"), "b": certgen.make_ca("Community B Anchor")}


def _p7b(*cas) -> bytes:
    return pkcs7.serialize_certificates([c.cert for c in cas], serialization.Encoding.DER)


def test_bundles_refresh_independently_and_failures_keep_last_good(http, communities, bind) -> None:
    a, b = communities["a"], communities["b"]
    signer = certgen.make_leaf(a, address="bundle-signer@community-a.test")
    signed_a = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(_p7b(a))
        .add_signer(signer.cert, signer.key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    url_a = http.put("/bundles/a.p7m", signed_a)
    url_b = http.put("/bundles/b.p7b", pkcs7.serialize_certificates([b.cert], serialization.Encoding.PEM))
    now = [0.0]
    store = TrustStore(
        allow_http=True,  # HttpFiles serves plain http on loopback
        bundles=[
            TrustBundle("a", url_a, refresh_interval=60, signing_cert=signer.cert),
            TrustBundle("b", url_b, refresh_interval=3600),
        ],
        domain_bundles={"clinic.test": ["a"], "lab.test": ["a", "b"]},
        fetcher=HttpFetcher(policy=LOOPBACK, timeout=2),
        clock=lambda: now[0],
    )
    assert {s.name: s.last_error for s in store.refresh_due()} == {"a": None, "b": None}

    # recipients of both communities, published in DNS
    alice = certgen.make_leaf(a, address="alice@hisp-a.test")
    bob = certgen.make_leaf(b, address="bob@hisp-b.test")
    bind.zone("hisp-a.test", [f"alice IN CERT PKIX 0 0 ( {base64.b64encode(alice.cert_der).decode()} )"])
    bind.zone("hisp-b.test", [f"bob IN CERT PKIX 0 0 ( {base64.b64encode(bob.cert_der).decode()} )"])
    resolver = CertificateResolver(
        DiscoveryConfig(net_policy=LOOPBACK, nameservers=[(bind.host, bind.port)], trust_store=store)
    )
    assert resolver.lookup("alice@hisp-a.test", local_domain="clinic.test").selected[0].trusted
    scoped = resolver.lookup("bob@hisp-b.test", local_domain="clinic.test")
    assert scoped.selected == [] and scoped.candidates[0].reason == "untrusted"  # clinic trusts only A
    assert resolver.lookup("bob@hisp-b.test", local_domain="lab.test").selected

    # bundle B's server starts failing; only A is due at t=61, both at t=3601
    http.remove("/bundles/b.p7b")
    now[0] = 61
    assert [s.name for s in store.refresh_due()] == ["a"]
    now[0] = 3601
    statuses = {s.name: s for s in store.refresh_due()}
    assert statuses["b"].last_error == "http_status"
    assert statuses["b"].anchors == [b.cert]  # last good copy kept
    assert statuses["a"].last_error is None and statuses["a"].refreshes == 3
    assert resolver.lookup("bob@hisp-b.test", local_domain="lab.test").selected  # still trusted

    # a bundle replaced by one with a bad signature is refused; A's anchors stay
    http.put("/bundles/a.p7m", _p7b(b))  # unsigned: refused because a signing cert is configured
    now[0] = 3700
    assert store.refresh("a").last_error == "unmatched_signature"
    assert store.anchors_for("clinic.test") == [a.cert]


def test_background_refresh_runs_on_schedule(http, communities) -> None:
    url_fast = http.put("/bundles/fast.p7b", _p7b(communities["a"]))
    url_slow = http.put("/bundles/slow.p7b", _p7b(communities["b"]))
    store = TrustStore(
        allow_http=True,  # HttpFiles serves plain http on loopback
        bundles=[
            TrustBundle("fast", url_fast, refresh_interval=0.1),
            TrustBundle("slow", url_slow, refresh_interval=3600),
        ],
        fetcher=HttpFetcher(policy=LOOPBACK, timeout=2),
    )
    store.start(poll=0.02)
    try:
        deadline = time.monotonic() + 20
        with store.refreshed:
            while store.status("fast").refreshes < 3 and time.monotonic() < deadline:
                store.refreshed.wait(0.5)
    finally:
        store.stop()
    assert store.status("fast").refreshes >= 3
    assert store.status("slow").refreshes == 1  # loaded once, not due again within its hour
    assert http.hits["/bundles/slow.p7b"] == 1


def test_incoming_and_outgoing_bundles_are_separate_per_local_domain(http, communities, bind) -> None:
    """TB-3 / CERT-5 (the Java RI's TrustBundleDomainReltn incoming/outgoing flags): clinic.test sends to
    community A's members and accepts mail signed by community B's. Discovery (outgoing) trusts only A; the
    agent's unseal (incoming) trusts only B; a domain configured for one direction only trusts no bundle in
    the other."""
    from direct.agent import DirectAgent
    from direct.message import build_message
    from direct.smime import Identity, seal

    a, b = communities["a"], communities["b"]
    store = TrustStore(
        allow_http=True,  # HttpFiles serves plain http on loopback
        bundles=[
            TrustBundle("a", http.put("/bundles/dir-a.p7b", _p7b(a)), refresh_interval=0),
            TrustBundle("b", http.put("/bundles/dir-b.p7b", _p7b(b)), refresh_interval=0),
        ],
        incoming_bundles={"clinic.test": ["b"]},
        outgoing_bundles={"clinic.test": ["a"], "sendonly.test": ["a"]},
        fetcher=HttpFetcher(policy=LOOPBACK, timeout=2),
    )
    store.refresh_due()
    assert store.anchors_for("clinic.test", "outgoing") == [a.cert]
    assert store.anchors_for("clinic.test", "incoming") == [b.cert]
    assert store.anchors_for("sendonly.test", "incoming") == []
    assert store.anchors_for("elsewhere.test", "incoming") == [a.cert, b.cert]  # unconfigured: all

    # outgoing, through discovery against BIND
    alice = certgen.make_leaf(a, address="alice@dir-a.test")
    bob = certgen.make_leaf(b, address="bob@dir-b.test")
    bind.zone("dir-a.test", [f"alice IN CERT PKIX 0 0 ( {base64.b64encode(alice.cert_der).decode()} )"])
    bind.zone("dir-b.test", [f"bob IN CERT PKIX 0 0 ( {base64.b64encode(bob.cert_der).decode()} )"])
    resolver = CertificateResolver(
        DiscoveryConfig(net_policy=LOOPBACK, nameservers=[(bind.host, bind.port)], trust_store=store)
    )
    assert resolver.lookup("alice@dir-a.test", local_domain="clinic.test").selected
    assert resolver.lookup("bob@dir-b.test", local_domain="clinic.test").error.code == "no_usable_certificate"

    # incoming, through the agent's unseal
    clinic = certgen.make_leaf(certgen.make_ca("Clinic CA"), address="desk@clinic.test")
    agent = DirectAgent([clinic], store)

    def verdict(sender, address: str) -> str:
        inner = build_message(address, ["desk@clinic.test"], "s", "t")
        raw = seal(inner, Identity.from_issued(sender), [clinic.cert])
        res = agent.unseal(raw, address, ["desk@clinic.test"])
        return "ok" if res.ok else res.error.code

    assert verdict(bob, "bob@dir-b.test") == "ok"
    assert verdict(alice, "alice@dir-a.test") == "untrusted_signer"


# --- issue 12, finding 11: signed bundles verified as configured, https required -------------------------
def _signed(payload: bytes, signer) -> bytes:
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(payload)
        .add_signer(signer.cert, signer.key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def test_http_bundle_url_is_refused_unless_allowed(http, communities) -> None:
    """Trust Bundle Distribution over https (direct.md TB-4): a plain http:// URL was fetched and its
    anchors trusted; now it is not even requested unless ``allow_http`` says so."""
    url = http.put("/bundles/plain.p7b", _p7b(communities["a"]))
    strict = TrustStore(bundles=[TrustBundle("plain", url)], fetcher=HttpFetcher(policy=LOOPBACK, timeout=2))
    status = strict.refresh("plain")
    assert status.last_error == "insecure_url" and "https" in (status.last_reason or "")
    assert status.anchors == [] and http.hits.get("/bundles/plain.p7b", 0) == 0

    allowed = TrustStore(
        bundles=[TrustBundle("plain", url)], fetcher=HttpFetcher(policy=LOOPBACK, timeout=2), allow_http=True
    )
    assert allowed.refresh("plain").anchors == [communities["a"].cert]


def test_bundle_on_loopback_is_refused_by_the_fetch_policy(http, communities, monkeypatch) -> None:
    """Bundle URLs follow the one outbound fetch policy: internal addresses only when allow-listed."""
    from direct.netpolicy import ALLOW_ENV

    monkeypatch.delenv(ALLOW_ENV, raising=False)
    url = http.put("/bundles/internal.p7b", _p7b(communities["a"]))
    store = TrustStore(bundles=[TrustBundle("internal", url)], allow_http=True)  # default fetcher
    assert store.refresh("internal").last_error == "blocked_address"
    assert http.hits.get("/bundles/internal.p7b", 0) == 0


def _sidecar_resolver(tmp_path, urls: list[str], signer=None, **settings):
    from fhir_bridge.config import load_settings
    from fhir_bridge.wiring import discovery_resolver

    if signer is not None:
        path = tmp_path / "bundle-signer.pem"
        path.write_bytes(signer.cert.public_bytes(serialization.Encoding.PEM))
        settings["direct_trust_bundle_signing_cert"] = str(path)
    return discovery_resolver(
        load_settings(
            env={},
            direct_trust_anchors=[],
            direct_trust_bundles=urls,
            direct_trust_bundles_allow_http=True,  # HttpFiles serves plain http on loopback
            direct_allow_networks=["127.0.0.0/8"],
            **settings,
        )
    )


def test_sidecar_verifies_bundles_against_the_configured_signing_cert(tmp_path, http, communities) -> None:
    """``direct.trust_bundle_signing_cert``: the sidecar verifies every bundle's CMS signature with it
    (Trust Bundle Distribution IG; direct.md TB-1); an unsigned or wrongly signed bundle is refused with a
    clear reason and the last good anchors are kept."""
    a, b = communities["a"], communities["b"]
    signer = certgen.make_leaf(a, address="signer@community-a.test")
    impostor = certgen.make_leaf(b, address="signer@impostor.test")
    http.put("/bundles/sidecar.p7m", _signed(_p7b(a), signer))
    resolver = _sidecar_resolver(tmp_path, [http.url("/bundles/sidecar.p7m")], signer)
    bundles = resolver.config.trust_store
    assert [c.subject for c in resolver.anchors()] == [a.cert.subject]

    for bad, code in ((_p7b(b), "unmatched_signature"), (_signed(_p7b(b), impostor), "unmatched_signature")):
        http.put("/bundles/sidecar.p7m", bad)
        status = bundles.store.refresh("bundle1")
        assert status.last_error == code and "signing certificate" in (status.last_reason or "")
        assert [c.subject for c in status.anchors] == [a.cert.subject]  # last good kept

    # without a configured signer an unsigned bundle is what it says it is (TB-1: signing is optional)
    http.put("/bundles/unsigned.p7b", _p7b(b))
    plain = _sidecar_resolver(tmp_path, [http.url("/bundles/unsigned.p7b")])
    assert [c.subject for c in plain.anchors()] == [b.cert.subject]


def test_sidecar_refuses_http_bundle_urls_by_default(tmp_path, http, communities) -> None:
    from fhir_bridge.config import load_settings
    from fhir_bridge.wiring import discovery_resolver

    url = http.put("/bundles/sidecar-plain.p7b", _p7b(communities["a"]))
    settings = load_settings(
        env={}, direct_trust_anchors=[], direct_trust_bundles=[url], direct_allow_networks=["127.0.0.0/8"]
    )
    resolver = discovery_resolver(settings)
    assert resolver.anchors() == []
    assert resolver.config.trust_store.store.status("bundle1").last_error == "insecure_url"
    assert http.hits.get("/bundles/sidecar-plain.p7b", 0) == 0


def test_a_slow_bundle_refresh_is_not_cut_off_by_a_lookups_deadline(http, communities, bind) -> None:
    """The lookup's total budget (direct.netpolicy) is for the recipient's servers; a due bundle refresh has
    its own limits: a bundle that takes longer than one lookup's budget still loads, and the lookup that
    triggered it still has its whole budget."""
    from direct.netpolicy import NetPolicy
    from fhir_bridge.wiring import RefreshingBundles  # the sidecar's store: refreshed when anchors are read

    a = communities["a"]
    url = http.put("/bundles/slow-community.p7b", _p7b(a), delay=1.5)
    store = RefreshingBundles([url], allow_http=True, policy=LOOPBACK)  # HttpFiles: plain http on loopback
    member = certgen.make_leaf(a, address="mo@slow-bundle.test")
    bind.zone("slow-bundle.test", [f"mo IN CERT PKIX 0 0 ( {base64.b64encode(member.cert_der).decode()} )"])
    policy = NetPolicy(allow=LOOPBACK.allow, lookup_deadline=1.0)
    resolver = CertificateResolver(
        DiscoveryConfig(net_policy=policy, nameservers=[(bind.host, bind.port)], trust_store=store)
    )
    res = resolver.lookup("mo@slow-bundle.test")
    assert res.error is None and res.trusted, res.error
    assert store.store.status("bundle1").anchors == [a.cert]

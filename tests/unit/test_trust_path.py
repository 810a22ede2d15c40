"""RFC 5280 path validation (direct.trust.path): DCDT quirks, dates, key usage, AIA, CRL."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization

from direct import certgen
from direct.errors import Expired, Revoked, TrustError, Untrusted, WrongKeyUsage
from direct.trust.fetch import HttpFetcher, NoFetcher
from direct.trust.path import validate_chain
from direct.trust.revocation import CrlCache
from tests.support.httpfiles import LOOPBACK, HttpFiles


@pytest.fixture(scope="module")
def http():
    files = HttpFiles()
    yield files
    files.close()


def _crls() -> CrlCache:
    return CrlCache(HttpFetcher(policy=LOOPBACK, timeout=1, deadline=2))


def test_valid_chain_through_intermediate(pki) -> None:
    leaf = pki.address("ok@path.example")
    res = validate_chain(leaf.cert, intermediates=leaf.chain, anchors=[pki.root.cert], fetcher=NoFetcher())
    assert res.trusted
    assert res.anchor == pki.root.cert
    assert [c.subject for c in res.path] == [leaf.cert.subject, pki.intermediate.cert.subject]


def test_intermediate_as_anchor_is_enough(pki) -> None:
    leaf = pki.address("ok2@path.example")
    res = validate_chain(leaf.cert, anchors=[pki.intermediate.cert], fetcher=NoFetcher())
    assert res.anchor == pki.intermediate.cert


def test_dcdt_style_cas_pass_rfc5280() -> None:
    """Non-critical basicConstraints on the root and an intermediate without AKI (DCDT's own CAs)."""
    root = certgen.make_ca("DCDT-like Root", basic_constraints_critical=False)
    inter = certgen.make_ca("DCDT-like Inter", issuer=root, basic_constraints_critical=False, with_aki=False)
    leaf = certgen.make_leaf(inter, address="d@dcdt.example")
    res = validate_chain(leaf.cert, intermediates=[inter.cert], anchors=[root.cert], fetcher=NoFetcher())
    assert res.trusted and len(res.path) == 2


def test_wrong_anchor_is_untrusted(pki) -> None:
    other = certgen.make_ca("Other Root")
    leaf = pki.address("x@path.example")
    with pytest.raises(Untrusted):
        validate_chain(leaf.cert, intermediates=leaf.chain, anchors=[other.cert], fetcher=NoFetcher())


def test_same_name_different_key_anchor_is_untrusted(pki) -> None:
    impostor = certgen.make_ca("BBD Test Root CA")  # same subject, different key
    leaf = pki.address("y@path.example")
    with pytest.raises(Untrusted):
        validate_chain(leaf.cert, intermediates=leaf.chain, anchors=[impostor.cert], fetcher=NoFetcher())


def test_missing_intermediate_without_aia_is_untrusted(pki) -> None:
    leaf = pki.address("z@path.example")
    with pytest.raises(Untrusted):
        validate_chain(leaf.cert, anchors=[pki.root.cert], fetcher=NoFetcher())


def test_expired_leaf(pki) -> None:
    leaf = pki.expired("old@path.example")
    with pytest.raises(Expired):
        validate_chain(leaf.cert, intermediates=leaf.chain, anchors=[pki.root.cert], fetcher=NoFetcher())


def test_not_yet_valid_leaf(pki) -> None:
    leaf = pki.not_yet_valid("new@path.example")
    with pytest.raises(Expired):
        validate_chain(leaf.cert, intermediates=leaf.chain, anchors=[pki.root.cert], fetcher=NoFetcher())


def test_moment_controls_validity(pki) -> None:
    leaf = pki.address("m@path.example")
    later = leaf.cert.not_valid_after_utc + dt.timedelta(days=1)
    with pytest.raises(Expired):
        validate_chain(
            leaf.cert, intermediates=leaf.chain, anchors=[pki.root.cert], moment=later, fetcher=NoFetcher()
        )


def test_expired_intermediate() -> None:
    now = dt.datetime.now(dt.UTC)
    root = certgen.make_ca("R")
    inter = certgen.make_ca(
        "I", issuer=root, not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
    )
    leaf = certgen.make_leaf(inter, address="a@b.example", not_before=now - dt.timedelta(days=2))
    with pytest.raises(Expired):
        validate_chain(leaf.cert, intermediates=[inter.cert], anchors=[root.cert], fetcher=NoFetcher())


def test_signing_only_cert_cannot_encrypt_but_can_sign(pki) -> None:
    leaf = pki.wrong_key_usage("s@path.example")
    with pytest.raises(WrongKeyUsage):
        validate_chain(
            leaf.cert,
            intermediates=leaf.chain,
            anchors=[pki.root.cert],
            purpose="encrypt",
            fetcher=NoFetcher(),
        )
    res = validate_chain(
        leaf.cert, intermediates=leaf.chain, anchors=[pki.root.cert], purpose="sign", fetcher=NoFetcher()
    )
    assert res.trusted


def test_encryption_only_cert_cannot_sign(pki) -> None:
    leaf = pki.address("e@path.example", digital_signature=False)
    with pytest.raises(WrongKeyUsage):
        validate_chain(
            leaf.cert, intermediates=leaf.chain, anchors=[pki.root.cert], purpose="sign", fetcher=NoFetcher()
        )


def test_leaf_used_as_issuer_is_rejected(pki) -> None:
    """A non-CA certificate cannot issue: RFC 5280 §6.1.4 (k)."""
    fake_ca = pki.address("notaca@path.example")
    fake_ca_issued = certgen.Issued(fake_ca.cert, fake_ca.key, [])
    leaf = certgen.make_leaf(fake_ca_issued, address="victim@path.example")
    with pytest.raises(Untrusted):
        validate_chain(
            leaf.cert, intermediates=[fake_ca.cert], anchors=[pki.intermediate.cert], fetcher=NoFetcher()
        )


def test_path_length_constraint() -> None:
    root = certgen.make_ca("PL Root", path_length=0)
    inter = certgen.make_ca("PL Inter", issuer=root)
    leaf = certgen.make_leaf(inter, address="pl@b.example")
    with pytest.raises(Untrusted):
        validate_chain(leaf.cert, intermediates=[inter.cert], anchors=[root.cert], fetcher=NoFetcher())


def test_public_policy_accepts_without_anchor(pki) -> None:
    leaf = pki.address("p@path.example")
    res = validate_chain(
        leaf.cert, intermediates=leaf.chain, anchors=[], require_anchor=False, fetcher=NoFetcher()
    )
    assert res.trusted is False
    with pytest.raises(Expired):
        validate_chain(
            pki.expired("p2@path.example").cert, anchors=[], require_anchor=False, fetcher=NoFetcher()
        )


def test_missing_intermediate_fetched_from_aia(http) -> None:
    root = certgen.make_ca("AIA Root")
    inter = certgen.make_ca("AIA Inter", issuer=root)
    url = http.put("/aia/inter.cer", inter.cert.public_bytes(serialization.Encoding.DER))
    leaf = certgen.make_leaf(inter, address="aia@b.example", aia_ca_issuers_url=url)
    res = validate_chain(
        leaf.cert, anchors=[root.cert], fetcher=HttpFetcher(policy=LOOPBACK, timeout=1), crls=_crls()
    )
    assert res.trusted and res.path[1] == inter.cert
    assert http.hits["/aia/inter.cer"] == 1


def test_unreachable_aia_is_untrusted_with_warning(http) -> None:
    root = certgen.make_ca("AIA2 Root")
    inter = certgen.make_ca("AIA2 Inter", issuer=root)
    leaf = certgen.make_leaf(inter, address="aia2@b.example", aia_ca_issuers_url=http.url("/aia/missing.cer"))
    with pytest.raises(Untrusted):
        validate_chain(
            leaf.cert, anchors=[root.cert], fetcher=HttpFetcher(policy=LOOPBACK, timeout=1), crls=_crls()
        )


def test_revoked_leaf_by_crl(http) -> None:
    root = certgen.make_ca("CRL Root")
    inter = certgen.make_ca("CRL Inter", issuer=root)
    good = certgen.make_leaf(inter, address="good@crl.example", crl_url=http.url("/crl/inter.crl"))
    bad = certgen.make_leaf(inter, address="bad@crl.example", crl_url=http.url("/crl/inter.crl"))
    crl = certgen.make_crl(inter, [bad.cert])
    http.put("/crl/inter.crl", crl.public_bytes(serialization.Encoding.DER))
    crls = _crls()
    res = validate_chain(
        good.cert,
        intermediates=[inter.cert],
        anchors=[root.cert],
        fetcher=HttpFetcher(policy=LOOPBACK, timeout=1),
        crls=crls,
    )
    assert res.revocation_checked and not res.warnings
    with pytest.raises(Revoked) as info:
        validate_chain(
            bad.cert,
            intermediates=[inter.cert],
            anchors=[root.cert],
            fetcher=HttpFetcher(policy=LOOPBACK, timeout=1),
            crls=crls,
        )
    assert info.value.code == "revoked"
    assert http.hits["/crl/inter.crl"] == 1  # cached until nextUpdate


def test_crl_signed_by_someone_else_is_soft_failure(http) -> None:
    root = certgen.make_ca("CRL2 Root")
    inter = certgen.make_ca("CRL2 Inter", issuer=root)
    forger = certgen.make_ca("CRL2 Inter")  # same name, other key
    leaf = certgen.make_leaf(inter, address="f@crl.example", crl_url=http.url("/crl/forged.crl"))
    http.put(
        "/crl/forged.crl", certgen.make_crl(forger, [leaf.cert]).public_bytes(serialization.Encoding.DER)
    )
    res = validate_chain(
        leaf.cert,
        intermediates=[inter.cert],
        anchors=[root.cert],
        fetcher=HttpFetcher(policy=LOOPBACK, timeout=1),
        crls=_crls(),
    )
    assert res.trusted and not res.revocation_checked
    assert any(w.startswith("crl_invalid") for w in res.warnings)


def test_unreachable_crl_is_reported_soft_failure(http) -> None:
    root = certgen.make_ca("CRL3 Root")
    inter = certgen.make_ca("CRL3 Inter", issuer=root)
    leaf = certgen.make_leaf(inter, address="u@crl.example", crl_url="http://127.0.0.1:9/none.crl")
    res = validate_chain(
        leaf.cert,
        intermediates=[inter.cert],
        anchors=[root.cert],
        fetcher=HttpFetcher(policy=LOOPBACK, timeout=1),
        crls=_crls(),
    )
    assert res.trusted and not res.revocation_checked
    assert any(w.startswith("crl_unreachable") for w in res.warnings)


def test_errors_are_trust_errors(pki) -> None:
    leaf = pki.expired("t@path.example")
    with pytest.raises(TrustError):
        validate_chain(leaf.cert, anchors=[pki.root.cert], fetcher=NoFetcher())


def test_unknown_certificate_signature_algorithm_is_untrusted(pki) -> None:
    """cryptography raises its own UnsupportedAlgorithm for an unknown signature OID: it must become a
    TrustError (Untrusted), like every other reason a certificate cannot be used."""
    from cryptography import x509

    leaf = pki.address("oid@path.example")
    sha256_rsa = bytes.fromhex("06092a864886f70d01010b")
    der = leaf.cert.public_bytes(serialization.Encoding.DER)
    odd = x509.load_der_x509_certificate(der.replace(sha256_rsa, sha256_rsa[:-1] + b"\x63"))
    with pytest.raises(Untrusted):
        validate_chain(odd, intermediates=leaf.chain, anchors=[pki.root.cert], fetcher=NoFetcher())


def test_fetch_deadline_holds_against_a_trickling_server() -> None:
    """A peer URL (AIA, CRL, IPKIX, bundle) that sends one byte every 0.2 s: each read is within the
    socket timeout, so only the total deadline can stop it. The old loop checked the deadline only after a
    16 KiB chunk had been assembled (about an hour here); now the fetch ends with ``timeout``."""
    import socket
    import threading
    import time

    from direct.trust.fetch import FetchError

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b"\0")
                except OSError:
                    return
                time.sleep(0.2)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    outcome: list[object] = []

    def fetch() -> None:
        try:
            outcome.append(
                HttpFetcher(policy=LOOPBACK, timeout=1, deadline=1).get(
                    f"http://127.0.0.1:{listener.getsockname()[1]}/x"
                )
            )
        except FetchError as exc:
            outcome.append(exc.code)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(15)
    stop.set()
    listener.close()
    assert outcome == ["timeout"]


def test_path_building_is_bounded_against_a_certificate_maze() -> None:
    """A sender controls the certificates in its SignedData. Five certificates named X (one key) issued by
    Y, and five named Y (another key) issued by X, make 5^6 distinct paths of the allowed depth; the
    depth-first builder explored them all (tens of thousands of signature checks per message: CPU denial
    of service from anyone who can mail us). Path building now stops at a fixed budget."""
    from direct.trust import path as path_mod

    key_x, key_y = certgen.new_key(), certgen.new_key()
    seed_x = certgen.make_ca("Maze X", key=key_x)
    seed_y = certgen.make_ca("Maze Y", key=key_y)
    xs = [certgen.make_ca("Maze X", key=key_x, issuer=seed_y) for _ in range(5)]
    ys = [certgen.make_ca("Maze Y", key=key_y, issuer=seed_x) for _ in range(5)]
    leaf = certgen.make_leaf(xs[0], address="maze@path.example")
    anchor = certgen.make_ca("Unrelated Root")
    pool = [c.cert for c in xs + ys]
    paths = path_mod._build_paths(leaf.cert, pool, [anchor.cert], NoFetcher(), [])
    assert len(paths) <= path_mod.MAX_PATHS
    with pytest.raises(Untrusted):
        validate_chain(leaf.cert, intermediates=pool, anchors=[anchor.cert], fetcher=NoFetcher())


def test_fetcher_refuses_link_local_targets_also_after_a_redirect() -> None:
    """AIA, CRL and IPKIX URLs come from peers: a certificate pointing its CRL at the cloud metadata service
    (169.254.169.254) made us GET it. Link-local, multicast, unspecified and reserved addresses are refused,
    and redirects are followed by hand so each hop is checked too."""
    import socket
    import threading

    from direct.trust.fetch import FetchError

    with pytest.raises(FetchError) as err:
        HttpFetcher(policy=LOOPBACK, timeout=1).get("http://169.254.169.254/latest/meta-data/")
    assert err.value.code == "blocked_address"

    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(
                b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/x\r\nContent-Length: 0\r\n\r\n"
            )

    threading.Thread(target=serve, daemon=True).start()
    try:
        with pytest.raises(FetchError) as err:
            HttpFetcher(policy=LOOPBACK, timeout=1).get(f"http://127.0.0.1:{listener.getsockname()[1]}/crl")
        assert err.value.code == "blocked_address"
    finally:
        listener.close()

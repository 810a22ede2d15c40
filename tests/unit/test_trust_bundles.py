"""Trust bundle parsing (p7b DER/PEM, PEM certificates, CMS-signed bundles) and TrustStore scheduling."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from direct import certgen
from direct.certs import sha256_hex
from direct.trust.bundles import BundleError, TrustBundle, TrustStore, parse_bundle
from direct.trust.fetch import FetchError


@pytest.fixture(scope="module")
def cas():
    return [certgen.make_ca(f"Bundle CA {i}") for i in range(3)]


def _fps(certs) -> set[str]:
    return {sha256_hex(c) for c in certs}


def _p7b(cas, encoding=serialization.Encoding.DER) -> bytes:
    return pkcs7.serialize_certificates([c.cert for c in cas], encoding)


def _signed(payload: bytes, signer: certgen.Issued) -> bytes:
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(payload)
        .add_signer(signer.cert, signer.key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def test_der_and_pem_p7b_and_pem_certs(cas) -> None:
    want = _fps(c.cert for c in cas)  # PKCS#7 holds a SET OF certificates: order is not kept
    assert _fps(parse_bundle(_p7b(cas))) == want
    assert _fps(parse_bundle(_p7b(cas, serialization.Encoding.PEM))) == want
    assert _fps(parse_bundle(b"".join(c.cert_pem for c in cas))) == want


def test_signed_bundle_verifies_against_signing_cert(cas) -> None:
    signer = certgen.make_leaf(cas[0], address="bundles@community.example")
    signed = _signed(_p7b(cas[1:]), signer)
    assert _fps(parse_bundle(signed, signer.cert)) == _fps(c.cert for c in cas[1:])


def test_signed_bundle_with_wrong_signing_cert_is_refused(cas) -> None:
    signer = certgen.make_leaf(cas[0], address="bundles@community.example")
    impostor = certgen.make_leaf(cas[0], address="bundles@community.example")
    with pytest.raises(BundleError) as info:
        parse_bundle(_signed(_p7b(cas[1:]), signer), impostor.cert)
    assert info.value.code == "unmatched_signature"


def test_tampered_signed_bundle_is_refused(cas) -> None:
    signer = certgen.make_leaf(cas[0], address="bundles@community.example")
    signed = bytearray(_signed(_p7b(cas[1:]), signer))
    anchor_der = cas[1].cert.public_bytes(serialization.Encoding.DER)
    at = bytes(signed).find(anchor_der[-40:])
    signed[at + 5] ^= 0xFF  # flip a byte inside the encapsulated bundle
    with pytest.raises(BundleError) as info:
        parse_bundle(bytes(signed), signer.cert)
    assert info.value.code in {"unmatched_signature", "invalid_bundle_format"}


def test_unsigned_bundle_refused_when_signing_cert_configured(cas) -> None:
    with pytest.raises(BundleError) as info:
        parse_bundle(_p7b(cas), cas[0].cert)
    assert info.value.code == "unmatched_signature"


def test_garbage_bundle(cas) -> None:
    with pytest.raises(BundleError) as info:
        parse_bundle(b"<html>not found</html>")
    assert info.value.code == "invalid_bundle_format"


class DictFetcher:
    """In-memory stand-in for the HTTP edge in these pure scheduling tests (the HTTP path is covered by
    tests/integration/test_discovery_trust_bundles.py against a real server)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.calls: list[str] = []

    def get(self, url: str) -> bytes:
        self.calls.append(url)
        if url not in self.files:
            raise FetchError("http_status", f"HTTP 404 from {url}")
        return self.files[url]


def test_store_schedule_failures_and_scoping(cas) -> None:
    now = [1000.0]
    fetcher = DictFetcher({"u:a": _p7b(cas[:1]), "u:b": _p7b(cas[1:2])})
    store = TrustStore(
        [cas[2].cert],
        [TrustBundle("a", "u:a", refresh_interval=60), TrustBundle("b", "u:b", refresh_interval=3600)],
        domain_bundles={"clinic.example": ["a"]},
        fetcher=fetcher,
        clock=lambda: now[0],
    )
    assert sorted(s.name for s in store.refresh_due()) == ["a", "b"]
    assert store.anchors_for("clinic.example") == [cas[2].cert, cas[0].cert]
    assert store.anchors_for(None) == [cas[2].cert, cas[0].cert, cas[1].cert]

    now[0] += 61
    assert store.due() == ["a"]
    now[0] += 3600
    del fetcher.files["u:b"]  # bundle b's server now fails
    statuses = {s.name: s for s in store.refresh_due()}
    assert statuses["b"].last_error == "http_status"
    assert statuses["b"].anchors == [cas[1].cert]  # last good copy kept
    assert statuses["a"].last_error is None
    assert store.anchors_for(None)[-1] == cas[1].cert


def test_store_never_refreshes_with_zero_interval(cas) -> None:
    fetcher = DictFetcher({"u": _p7b(cas)})
    store = TrustStore(bundles=[TrustBundle("once", "u", refresh_interval=0)], fetcher=fetcher)
    store.refresh_due()
    assert store.due() == []
    assert fetcher.calls == ["u"]

"""Key policy in discovery (issue 12 #5), against the real BIND9: a recipient certificate with an RSA key
under 2048 bits is never selected, its candidate says why (``weak_key``), and ``bbdirect lookup --json``
shows it in the fixed contract's ``reason``."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from direct.discovery import CertificateResolver, DiscoveryConfig
from direct.trust.policy import TrustPolicy
from tests.support.httpfiles import LOOPBACK

pytestmark = [pytest.mark.service("bind9")]


def _pkix(owner: str, der: bytes) -> str:
    return f"{owner} 300 IN CERT PKIX 0 0 ( {base64.b64encode(der).decode()} )"


@pytest.fixture(scope="module")
def weak(bind, pki):
    """``rex@weak.test`` publishes an RSA-1024 and an RSA-2048 certificate; ``sol@weak.test`` only an
    RSA-1024 one (with a good domain-bound certificate the stop rule must not fall back to)."""
    rsa1024 = pki.address("rex@weak.test", bits=1024)
    rsa2048 = pki.address("rex@weak.test")
    sol1024 = pki.address("sol@weak.test", bits=1024)
    domain = pki.domain("weak.test")
    bind.zone(
        "weak.test",
        [
            _pkix("rex", rsa1024.cert_der),
            _pkix("rex", rsa2048.cert_der),
            _pkix("sol", sol1024.cert_der),
            _pkix("@", domain.cert_der),
        ],
    )
    return rsa1024, rsa2048, sol1024


def _resolver(bind, pki) -> CertificateResolver:
    return CertificateResolver(
        DiscoveryConfig(
            net_policy=LOOPBACK, nameservers=[(bind.host, bind.port)], anchors=[pki.intermediate.cert]
        )
    )


@pytest.mark.parametrize("policy", [TrustPolicy.TRUSTED, TrustPolicy.PUBLIC])
def test_rsa_1024_recipient_is_not_selected(bind, pki, weak, policy) -> None:
    rsa1024, rsa2048, _ = weak
    res = _resolver(bind, pki).lookup("rex@weak.test", policy)
    assert res.error is None
    assert [c.cert for c in res.selected] == [rsa2048.cert]
    verdicts = {c.cert: (c.usable, c.reason) for c in res.candidates}
    assert verdicts[rsa1024.cert] == (False, "weak_key")
    assert verdicts[rsa2048.cert] == (True, None)


def test_only_rsa_1024_published_is_a_failure_that_says_why(bind, pki, weak) -> None:
    """DISC-2 stop rule: the address-bound step found a certificate, unusable (weak key): no fallback."""
    _, _, sol1024 = weak
    res = _resolver(bind, pki).lookup("sol@weak.test")
    assert res.selected == [] and res.error is not None
    assert res.error.code == "no_usable_certificate" and "weak_key" in res.error.message
    assert [(c.cert, c.usable, c.reason) for c in res.candidates] == [(sol1024.cert, False, "weak_key")]


def test_lookup_json_shows_the_key_policy_in_reason(bind, pki, weak) -> None:
    rsa1024, rsa2048, _ = weak
    anchor = pki.write_cert(pki.intermediate.cert, "weak-anchor")
    args = ["lookup", "rex@weak.test", "--json", "--nameserver", bind.nameserver, "--anchor", str(anchor)]
    proc = subprocess.run(
        [sys.executable, "-m", "bbdirect.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"address", "selected", "candidates", "error"}
    assert [s["sha256"] for s in doc["selected"]] == [hashlib.sha256(rsa2048.cert_der).hexdigest()]
    by_hash = {c["sha256"]: c for c in doc["candidates"]}
    refused = by_hash[hashlib.sha256(rsa1024.cert_der).hexdigest()]
    assert set(refused) == {"sha256", "source", "binding", "subject", "not_after", "usable", "reason"}
    assert (refused["usable"], refused["reason"]) == (False, "weak_key")

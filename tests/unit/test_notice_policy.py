"""The notice policy of :class:`direct.agent.DirectAgent` (issue 12 #1, #2), as a pure decision per notice."""

from __future__ import annotations

import pytest

from direct.agent import DirectAgent
from direct.mdn import Notification

MID = "<m1@a.example>"
BOB = "bob@b.example"


@pytest.fixture(scope="module")
def certs(pki):
    return {
        "bob": pki.address(BOB).cert,
        "hisp": pki.domain("b.example").cert,
        "carol": pki.address("carol@c.example").cert,
    }


def mdn(disposition, rcpt=BOB, kind="mdn"):
    return Notification(kind, MID, rcpt, disposition)


@pytest.mark.parametrize(
    ("signer", "note", "verdict"),
    [
        ("bob", mdn("processed"), (True, "processed", "applies")),
        ("hisp", mdn("displayed"), (True, "dispatched", "applies")),  # domain-bound, displayed = delivered
        ("bob", mdn("denied"), (True, "failed", "applies")),
        ("carol", mdn("processed"), (False, None, "not_bound")),
        ("carol", mdn("failed"), (False, None, "not_bound")),
        ("bob", mdn(None), (False, None, "malformed")),  # no Disposition: ignored, not failed
        ("bob", mdn("processed", rcpt=""), (False, None, "malformed")),
        (None, mdn("dispatched"), (False, None, "unverified")),  # unsigned never reports success
        (None, mdn("failed", kind="dsn"), (False, None, "unverified")),  # no relay configured
        ("bob", mdn("delayed", kind="dsn"), (True, None, "informational")),
    ],
)
def test_judge(certs, signer, note, verdict):
    agent = DirectAgent([])
    got = agent.judge(note, certs.get(signer) if signer else None)
    assert (got.verified, got.outcome, got.reason) == verdict
    assert got.applies == (verdict[2] == "applies")


def test_unsigned_dsns_count_only_from_a_relay():
    agent = DirectAgent([], dsn_relays=["192.0.2.0/28", "2001:db8::25", "localhost"])
    assert agent.is_relay("192.0.2.5") and agent.is_relay("2001:db8::25") and agent.is_relay("127.0.0.1")
    assert not agent.is_relay("192.0.2.17") and not agent.is_relay(None) and not agent.is_relay("nonsense")
    relayed = agent.judge(mdn("failed", kind="dsn"), None, from_relay=True)
    assert (relayed.outcome, relayed.reason) == ("failed", "applies")
    # Even a relay's "delivered" DSN is no delivery notice, and an unsigned MDN never counts.
    assert agent.judge(mdn("delivered", kind="dsn"), None, from_relay=True).outcome is None
    assert agent.judge(mdn("processed"), None, from_relay=True).reason == "unverified"
    assert not DirectAgent([]).is_relay("127.0.0.1")  # default: nobody


def test_concerns_compares_message_id_and_final_recipient(certs):
    verdict = DirectAgent([]).judge(mdn("processed"), certs["bob"])
    assert verdict.concerns(" <m1@a.example> ", "Bob@B.example")
    assert not verdict.concerns(MID, "carol@c.example") and not verdict.concerns("<m2@a.example>", BOB)

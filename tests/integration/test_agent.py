"""DirectAgent end to end on loopback: two HISPs (agents + SMTP receiving endpoints), certificates discovered
through a real BIND9 (DNS CERT), a C-CDA delivered into an inbox and processed + dispatched MDNs flowing
back, signed and encrypted, into the sender's delivery tracker."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading

import pytest

from direct.agent import DirectAgent, receiving_endpoint
from direct.discovery.config import DiscoveryConfig
from direct.discovery.resolver import CertificateResolver
from direct.errors import NoCertificate, PermanentDeliveryError
from direct.mdn import DeliveryState, DeliveryTracker, build_mdn
from direct.message import Attachment
from direct.smime import Identity, seal
from direct.transport import SmtpTarget
from direct.trust.fetch import NoFetcher
from tests.support.httpfiles import LOOPBACK
from tests.support.services import wait_for_port

pytestmark = pytest.mark.service("bind9")
CCDA = b'<?xml version="1.0"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3"/>\n'


class Collector:
    def __init__(self):
        self.results = []
        self.cond = threading.Condition()

    def __call__(self, result):
        with self.cond:
            self.results.append(result)
            self.cond.notify_all()

    def wait(self, n, timeout=20.0):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.results) >= n, timeout), f"{len(self.results)} of {n}"
            return list(self.results)


@pytest.fixture(scope="module")
def hisps(bind, pki, tmp_path_factory):
    wait_for_port(bind.host, bind.rndc_port, timeout=20)
    alice = pki.address("alice@hispa.test")
    bob = pki.address("bob@hispb.test")
    for zone, name, issued in (("hispa.test", "alice", alice), ("hispb.test", "bob", bob)):
        bind.zone(zone, [f"{name} 300 IN CERT PKIX 0 0 {base64.b64encode(issued.cert_der).decode()}"])
    # DNS CERT publishes the leaf only; the intermediate is configured as an anchor (CERT-5 allows it).
    config = DiscoveryConfig(
        net_policy=LOOPBACK,
        nameservers=[(bind.host, bind.port)],
        anchors=[pki.intermediate.cert],
        fetcher=NoFetcher(),
    )
    inbox_a, inbox_b = tmp_path_factory.mktemp("inbox_a"), tmp_path_factory.mktemp("inbox_b")
    got_a, got_b = Collector(), Collector()
    agent_a = DirectAgent([alice], [pki.root.cert], CertificateResolver(config))
    agent_b = DirectAgent([bob], [pki.root.cert], CertificateResolver(config))
    ep_a = receiving_endpoint("127.0.0.1", 0, agent_a, inbox_a, on_message=got_a).start()
    ep_b = receiving_endpoint("127.0.0.1", 0, agent_b, inbox_b, on_message=got_b).start()
    agent_a.transport = SmtpTarget(host="127.0.0.1", port=ep_b.port, timeout=10)
    agent_b.transport = SmtpTarget(host="127.0.0.1", port=ep_a.port, timeout=10)
    yield {"a": agent_a, "b": agent_b, "inbox_b": inbox_b, "got_a": got_a, "got_b": got_b, "pki": pki}
    ep_a.stop()
    ep_b.stop()


def test_send_deliver_store_and_mdn_round_trip(hisps):
    a, got_a = hisps["a"], hisps["got_a"]
    before = len(got_a.results)
    receipt = a.send(
        "alice@hispa.test",
        ["bob@hispb.test"],
        "Records",
        "Sent at the patient's request.",
        [Attachment("ccd.xml", "application/xml", CCDA)],
    )
    assert receipt.signed and receipt.encrypted and receipt.trusted
    assert receipt.recipients == ["bob@hispb.test"] and receipt.delivery.accepted == ["bob@hispb.test"]
    # Receiver side: stored in the inbox, processed + dispatched answered.
    stored = hisps["inbox_b"] / receipt.message_id.strip("<>")
    assert (stored / "ccd.xml").read_bytes() == CCDA
    report = json.loads((stored / "message.json").read_text())
    assert report["ok"] and report["from"] == "alice@hispa.test"
    received_b = hisps["got_b"].results[-1]
    assert received_b.mdns_sent == ["processed", "dispatched"]
    # Sender side: both MDNs arrived signed + encrypted, and drove the tracker to dispatched.
    mdns = got_a.wait(before + 2)[before:]
    assert all(
        r.unsealed.decrypted and r.unsealed.signature == "valid" and r.unsealed.is_notification for r in mdns
    )
    assert [n.disposition for r in mdns for n in r.notifications] == ["processed", "dispatched"]
    assert all(r.mdns_sent == [] for r in mdns)  # never MDN an MDN
    state = a.tracker.get(receipt.message_id).recipients["bob@hispb.test"]
    assert state.state == DeliveryState.DISPATCHED


def test_untrusted_sender_is_refused_without_mdn(hisps):
    pki = hisps["pki"]
    stranger = pki.address("alice@hispa.test", issuer=pki.ca("Unknown Root"))
    rogue = DirectAgent([stranger], [pki.root.cert], transport=hisps["a"].transport)
    before = len(hisps["got_a"].results)
    with pytest.raises(PermanentDeliveryError) as err:
        rogue.send(
            "alice@hispa.test", ["bob@hispb.test"], "x", "y", recipient_certs=[hisps["b"].identities[0].cert]
        )
    assert "untrusted_signer" in err.value.detail
    # The refusal happens before the reply, and an MDN would have been sent before it: none came.
    assert len(hisps["got_a"].results) == before


def test_timeouts_fail_silent_recipients(smtp_sink, pki):
    bob = pki.address("bob@quiet.test")
    clock = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]
    agent = DirectAgent(
        [pki.address("alice@hispa.test")],
        [pki.root.cert],
        transport=SmtpTarget(host=smtp_sink.host, port=smtp_sink.port, timeout=10),
        tracker=DeliveryTracker(dt.timedelta(minutes=5), dt.timedelta(minutes=30)),
        clock=lambda: clock[0],
    )
    receipt = agent.send("alice@hispa.test", ["bob@quiet.test"], "x", "y", recipient_certs=[bob.cert])
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ["bob@quiet.test"]
    expired = agent.tracker.expire(clock[0] + dt.timedelta(minutes=6))
    assert [(t.message_id, t.new, t.reason) for t in expired] == [
        (receipt.message_id, DeliveryState.TIMED_OUT, "no processed MDN")
    ]


def test_mdn_with_null_reverse_path_is_accepted(hisps):
    a, b = hisps["a"], hisps["b"]
    tracked = a.tracker.track("<late.1@hispa.test>", ["bob@hispb.test"], dt.datetime.now(dt.UTC))
    mdn = build_mdn(
        original_message_id=tracked.message_id,
        original_sender="alice@hispa.test",
        final_recipient="bob@hispb.test",
        disposition="processed",
    )
    raw = seal(mdn, b.identities[0], [a.identities[0].cert])
    result = a.receive(raw, "", ["alice@hispa.test"])
    assert result.ok and result.transitions[0].new == DeliveryState.PROCESSED
    # A null reverse-path on an ordinary message is routing tamper.
    plain = b.prepare(
        "bob@hispb.test", ["alice@hispa.test"], "x", "y", recipient_certs=[a.identities[0].cert]
    )
    assert a.receive(plain.raw, "", ["alice@hispa.test"]).unsealed.error.code == "routing_tamper"


def test_no_certificate_without_resolver(pki):
    agent = DirectAgent([Identity.from_issued(pki.address("alice@hispa.test"))], [pki.root.cert])
    with pytest.raises(NoCertificate):
        agent.prepare("alice@hispa.test", ["bob@hispb.test"], "x", "y")


def test_failed_mdn_reaches_the_sender_tracker(hisps):
    """DN-3: accepted but undeliverable at the final destination -> failed MDN -> tracker FAILED."""
    a, b, got_a = hisps["a"], hisps["b"], hisps["got_a"]
    prepared = a.prepare(
        "alice@hispa.test", ["bob@hispb.test"], "x", "y", recipient_certs=[b.identities[0].cert]
    )
    a.tracker.track(prepared.message_id, prepared.recipients, dt.datetime.now(dt.UTC))
    before = len(got_a.results)
    result = b.receive(prepared.raw, "alice@hispa.test", ["bob@hispb.test"], send_mdn=False)
    assert result.ok and result.mdns_sent == []
    b.failed(result, "mailbox full")
    assert result.mdns_sent == ["failed"]
    note = got_a.wait(before + 1)[-1].notifications[0]
    assert (note.disposition, note.detail) == ("failed", "mailbox full")
    rec = a.tracker.get(prepared.message_id).recipients["bob@hispb.test"]
    assert rec.state == DeliveryState.FAILED and rec.reason == "mailbox full"


def _unreadable_xdm() -> bytes:
    """A zip that looks like XDM (IHE_XDM/ entries) whose only document is flagged encrypted."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("IHE_XDM/SUBSET01/DOC.XML", b"<x/>")
    data = bytearray(buf.getvalue())
    data[6] |= 1
    data[data.find(b"PK\x01\x02") + 8] |= 1
    return bytes(data)


def test_unreadable_xdm_is_stored_as_is_and_the_message_accepted(hisps, caplog):
    """An accepted message whose XDM package cannot be unpacked was answered 'processed' and THEN refused
    with 550 (or 451 for ever, for an encrypted entry): the sender saw both. It is stored as received."""
    a, got_a = hisps["a"], hisps["got_a"]
    before = len(got_a.results)
    zipped = _unreadable_xdm()
    receipt = a.send(
        "alice@hispa.test",
        ["bob@hispb.test"],
        "XDM/1.0/DDM package",
        "see attachment",
        [Attachment("PKG.ZIP", "application/zip", zipped)],
    )
    assert receipt.delivery.accepted == ["bob@hispb.test"]
    stored = hisps["inbox_b"] / receipt.message_id.strip("<>")
    assert (stored / "PKG.ZIP").read_bytes() == zipped
    assert not (stored / "PKG_xdm").exists()
    assert json.loads((stored / "message.json").read_text())["ok"]
    # PHI at rest: the message folder and every file in it are owner-only.
    assert stored.stat().st_mode & 0o077 == 0
    assert all(f.stat().st_mode & 0o077 == 0 for f in stored.iterdir())
    assert "kept without unpacking" in caplog.text and "PKG" not in caplog.text  # file names may be PHI
    mdns = got_a.wait(before + 2)[before:]
    assert [n.disposition for r in mdns for n in r.notifications] == ["processed", "dispatched"]


def test_endpoint_reply_is_no_padding_oracle(hisps):
    """CBC padding oracle (Vaudenay; the EFAIL family for S/MIME): refusing a tampered ciphertext with
    ``decrypt_failed`` but a well-padded forgery with ``malformed_message``/``missing_signature`` tells a remote
    sender whether its guess padded correctly, which decrypts a captured message byte by byte. Until a
    signature has verified, every refusal now has the same SMTP reply."""
    from direct.smime import envelope, mime

    a, b = hisps["a"], hisps["b"]
    bob_cert = b.identities[0].cert
    head = (
        b"From: alice@hispa.test\r\nTo: bob@hispb.test\r\nMessage-ID: <oracle.1@hispa.test>\r\n"
        b"Subject: Direct message\r\nMIME-Version: 1.0\r\n"
    )

    def outer(der: bytes) -> bytes:
        headers, body = mime.build_enveloped_body(der)
        return head + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n" + body

    well_padded = envelope.encrypt(b"Content-Type: text/plain\r\n\r\nnot signed", [bob_cert])
    bad_padding = bytearray(envelope.encrypt(b"Content-Type: text/plain\r\n\r\nnot signed", [bob_cert]))
    bad_padding[-17] ^= 0x80  # last byte of the next-to-last block: the final pad byte becomes > 16
    replies = []
    for der in (well_padded, bytes(bad_padding)):
        with pytest.raises(PermanentDeliveryError) as err:
            a.deliver(outer(der), "alice@hispa.test", ["bob@hispb.test"], a.transport)
        replies.append(err.value.detail)
    assert replies[0] == replies[1], replies
    assert replies[0].startswith("550") and "crypto_error" in replies[0]
    # Decided from public data only (no RecipientInfo for our certificates): still named, helps peers.
    with pytest.raises(PermanentDeliveryError) as err:
        a.deliver(
            outer(envelope.encrypt(b"x", [a.identities[0].cert])),
            "alice@hispa.test",
            ["bob@hispb.test"],
            a.transport,
        )
    assert "decrypt_failed" in err.value.detail


def test_a_reused_message_id_never_overwrites_a_stored_message(hisps):
    """Two different messages with the same Message-ID (a buggy or hostile trusted sender): the second one
    overwrote the first one's records in the inbox. A retransmission of the same message stays one folder."""
    a, b = hisps["a"], hisps["b"]
    cert = b.identities[0].cert
    first = a.prepare(
        "alice@hispa.test",
        ["bob@hispb.test"],
        "x",
        "first",
        [Attachment("ccd.xml", "application/xml", b"<first/>")],
        recipient_certs=[cert],
        message_id="<dup.1@hispa.test>",
    )
    second = a.prepare(
        "alice@hispa.test",
        ["bob@hispb.test"],
        "x",
        "second",
        [Attachment("ccd.xml", "application/xml", b"<second/>")],
        recipient_certs=[cert],
        message_id="<dup.1@hispa.test>",
    )
    for prepared in (first, first, second):
        a.deliver(prepared.raw, prepared.mail_from, prepared.recipients, a.transport)
    folders = sorted(p for p in hisps["inbox_b"].iterdir() if p.name.startswith("dup.1@hispa.test"))
    assert [(f / "ccd.xml").read_bytes() for f in folders] == [b"<first/>", b"<second/>"]


def test_notification_about_another_recipient_is_not_applied(hisps):
    """Any member of the trust community can sign an MDN. One from carol@hispc.test claiming that
    bob@hispb.test processed (or failed) our message moved bob's delivery state. A notification now counts
    only when its signer is bound (address or domain, CERT-1) to the Final-Recipient it reports on (DN-7)."""
    a, b, pki = hisps["a"], hisps["b"], hisps["pki"]
    carol = Identity.from_issued(pki.address("carol@hispc.test"))
    tracked = a.tracker.track("<spoof.1@hispa.test>", ["bob@hispb.test"], dt.datetime.now(dt.UTC))
    forged = build_mdn(
        original_message_id=tracked.message_id,
        original_sender="alice@hispa.test",
        final_recipient="bob@hispb.test",
        disposition="failed",
        failure="forged",
    )
    del forged["From"]
    forged["From"] = "carol@hispc.test"
    result = a.receive(seal(forged, carol, [a.identities[0].cert]), "carol@hispc.test", ["alice@hispa.test"])
    assert result.ok and result.transitions == []
    assert (
        result.ignored_notifications and result.ignored_notifications[0].final_recipient == "bob@hispb.test"
    )
    assert a.tracker.get(tracked.message_id).recipients["bob@hispb.test"].state == DeliveryState.SENT
    genuine = build_mdn(
        original_message_id=tracked.message_id,
        original_sender="alice@hispa.test",
        final_recipient="bob@hispb.test",
        disposition="processed",
    )
    result = a.receive(
        seal(genuine, b.identities[0], [a.identities[0].cert]), "bob@hispb.test", ["alice@hispa.test"]
    )
    assert [t.new for t in result.transitions] == [DeliveryState.PROCESSED]

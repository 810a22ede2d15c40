"""Interop with the Direct Project Java reference implementation (``org.nhind:agent`` 8.0.0), both ways.

The RI runs as a separate JVM through the harness in ``tests/interop/java`` (fixture ``java_ri``); our side
runs through the ``bbdirect seal`` / ``bbdirect unseal --json`` CLI contract of issue 3, and through the
``direct.mdn`` / ``direct.smime`` API for MDNs (which the CLI report does not carry). Keys are made at
test time. Where the RI cannot do something (RSA-OAEP with SHA-256, AES-GCM, emitting OAEP, SHA-1
signing) a test pins that behaviour, so the interop matrix in docs/interop.md stays true.

Trust set-up, and why: the RI builds certificate paths only from its anchors, AIA URLs and its own
resolvers, never from the certificates inside the CMS signature, so the RI is anchored at the CA that
issued our leaf (``pki.intermediate``). The RI's identity comes from its own root ("RI HISP Root CA"),
which is our anchor for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from direct.agent import DirectAgent
from direct.mdn import (
    DeliveryState,
    Notification,
    build_mdn,
    norm_message_id,
    parse_notifications,
    requests_final_destination,
)
from direct.message import Attachment, parse_message
from direct.smime import Identity, UnsealResult, load_certificate_files, seal, unseal
from direct.transport.smtp_client import SmtpTarget
from tests.fixtures.java_ri import JavaRI
from tests.support.pki import TestPKI
from tests.support.services import need

pytestmark = pytest.mark.service("java")

REPO = Path(__file__).resolve().parents[2]
OURS = "sender@bbd.example"
THEIRS = "receiver@ri.example"

# CMS algorithm identifiers the RI reports for the envelope it opened (RFC 3565, RFC 8017).
AES_OID = {"aes128-cbc": "2.16.840.1.101.3.4.1.2", "aes256-cbc": "2.16.840.1.101.3.4.1.42"}
RI_KEY_TRANSPORT = {"rsa": "rsa-pkcs1v15", "rsa-oaep": "rsa-oaep-sha1"}


@dataclass
class Party:
    address: str
    cert: Path  # leaf first, then its chain
    key: Path
    anchor: Path  # what the *other* side must trust to accept this party's signature


@dataclass
class Peers:
    ours: Party
    ri: Party
    ccda: Path
    dir: Path


@pytest.fixture(scope="module")
def peers(pki: TestPKI, tmp_path_factory) -> Peers:
    d = tmp_path_factory.mktemp("ri-interop")
    ours = pki.address(OURS)
    ri_root = pki.ca("RI HISP Root CA")
    theirs = pki.address(THEIRS, issuer=ri_root)
    ours_cert, ours_key = ours.write(d, "ours")
    ri_cert, ri_key = theirs.write(d, "ri")
    ours_anchor = pki.write_cert(pki.intermediate.cert, "ri-trusts-ours")
    ri_anchor = pki.write_cert(ri_root.cert, "we-trust-ri")
    ccda = d / "ccd.xml"
    # Non-ASCII text and a line far over 998 octets: the attachment must survive base64 byte for byte.
    ccda.write_bytes(
        (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
            "<title>Résumé de santé — Zoë Müller</title>"
            f"<text>{'x' * 3000}</text></ClinicalDocument>\n"
        ).encode()
    )
    return Peers(
        Party(OURS, ours_cert, ours_key, ours_anchor),
        Party(THEIRS, ri_cert, ri_key, ri_anchor),
        ccda,
        d,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bbdirect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bbdirect.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def our_seal(
    p: Peers,
    out: Path,
    *,
    cipher: str = "aes256-cbc",
    key_transport: str = "rsa",
    digest: str = "sha256",
    attach: Path | None = None,
) -> Path:
    proc = bbdirect(
        "seal",
        "--from", p.ours.address,
        "--to", p.ri.address,
        "--sign-cert", str(p.ours.cert),
        "--sign-key", str(p.ours.key),
        "--recipient-cert", str(p.ri.cert),
        "--subject", "Health information",
        "--attach", str(attach or p.ccda),
        "--cipher", cipher,
        "--key-transport", key_transport,
        "--digest", digest,
        "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def our_unseal_api(p: Peers, message: Path) -> UnsealResult:
    """The Python API behind ``bbdirect unseal``, for what the JSON report does not carry (the MDN fields)."""
    me = Identity.load(p.ours.cert, p.ours.key)
    return unseal(message.read_bytes(), [me], load_certificate_files([p.ri.anchor]))


def our_unseal(p: Peers, message: Path) -> dict:
    proc = bbdirect(
        "unseal", str(message),
        "--cert", str(p.ours.cert),
        "--key", str(p.ours.key),
        "--anchor", str(p.ri.anchor),
        "--json",
    )  # fmt: skip
    report = json.loads(proc.stdout)
    assert (proc.returncode == 0) == report["ok"], proc.stderr
    return report


def ri_unseal(java_ri: JavaRI, p: Peers, message: Path, **extra):
    return java_ri.run(
        "unseal",
        in_=message,
        cert=p.ri.cert,
        key=p.ri.key,
        anchor=extra.pop("anchor", p.ours.anchor),
        peer_cert=p.ours.cert,
        **extra,
    )


def ri_seal(java_ri: JavaRI, p: Peers, out: Path, enc: str = "AES256", **extra):
    return java_ri.run(
        "seal",
        from_=p.ri.address,
        to=p.ours.address,
        cert=p.ri.cert,
        key=p.ri.key,
        recipient_cert=p.ours.cert,
        anchor=p.ours.anchor,
        attach=p.ccda,
        subject="Health information",
        enc=enc,
        out=out,
        **extra,
    )


# --- ours -> RI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_transport", ["rsa", "rsa-oaep"])
@pytest.mark.parametrize("cipher", ["aes128-cbc", "aes256-cbc"])
def test_ri_decrypts_and_verifies_our_message(java_ri, peers, tmp_path, cipher, key_transport):
    msg = our_seal(peers, tmp_path / "ours.eml", cipher=cipher, key_transport=key_transport)

    res = ri_unseal(java_ri, peers, msg)

    assert res.ok, res.report
    env = res["envelope"]
    assert env["content_encryption_oid"] == AES_OID[cipher]
    # Encrypted to the recipient and to the sender's own certificate (issue 3, outbound).
    assert len(env["recipients"]) >= 2
    assert {r["key_encryption"] for r in env["recipients"]} == {RI_KEY_TRANSPORT[key_transport]}
    # The RI's own strong-digest signature check (SMIMECryptographerImpl.checkSignature) passes too.
    assert res["strict"]["ok"], res["strict"]
    assert res["strict"]["micalg"] == "sha-256"
    assert res["strict"]["signed_content_type"] == "message/rfc822"  # wrapped (RFC 5751 §3.1)
    assert [s["signature_valid"] for s in res["signers"]] == [True]
    assert [r["status"] for r in res["recipients"]] in (["Success"], ["Success_ThumbprintMismatch"])
    assert res["message"]["from"] == OURS and res["message"]["to"] == [THEIRS]
    assert (
        res["message"]["disposition_notification_options"]
        == "X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true"
    )
    [att] = res["attachments"]
    assert att["filename"] == "ccd.xml"
    assert att["content_type"] == "application/xml"
    assert att["sha256"] == sha256(peers.ccda)


@pytest.mark.parametrize("digest", ["sha384", "sha512"])
def test_ri_verifies_our_stronger_digests(java_ri, peers, tmp_path, digest):
    msg = our_seal(peers, tmp_path / "ours.eml", digest=digest)
    res = ri_unseal(java_ri, peers, msg)
    assert res.ok, res.report
    assert res["strict"]["ok"], res["strict"]
    assert res["strict"]["micalg"] == f"sha-{digest[3:]}"
    assert [s["signature_valid"] for s in res["signers"]] == [True]


def test_ri_extracts_our_attachment_byte_identical(java_ri, peers, tmp_path):
    msg = our_seal(peers, tmp_path / "ours.eml")
    res = ri_unseal(java_ri, peers, msg, extract=tmp_path / "out")
    assert res.ok, res.report
    assert (tmp_path / "out" / "ccd.xml").read_bytes() == peers.ccda.read_bytes()


def test_ri_opens_our_5mb_message_byte_identical(java_ri, peers, tmp_path):
    """Issue 14: the streamed seal (chunked encryption, base64 written into the output) of a 5 MB document."""
    big = tmp_path / "big" / "ccd.xml"
    big.parent.mkdir()
    big.write_bytes((b"<ClinicalDocument>" + os.urandom(2_500_000).hex().encode())[:5_000_000])
    msg = our_seal(peers, tmp_path / "ours.eml", attach=big)
    res = ri_unseal(java_ri, peers, msg, extract=tmp_path / "out")
    assert res.ok, res.report
    assert res["strict"]["ok"], res["strict"]
    assert [a["size"] for a in res["attachments"]] == [5_000_000]
    assert (tmp_path / "out" / "ccd.xml").read_bytes() == big.read_bytes()


def test_ri_rejects_our_message_when_it_does_not_trust_us(java_ri, peers, pki, tmp_path):
    """Negative control: the same message fails at the RI when its anchor is an unrelated CA."""
    stranger = pki.write_cert(pki.ca("Unrelated CA").cert, "unrelated-anchor")
    msg = our_seal(peers, tmp_path / "ours.eml")
    res = ri_unseal(java_ri, peers, msg, anchor=stranger)
    assert not res.ok
    assert res.error_code == "TrustError.NoTrustedRecipients"


def test_ri_does_not_build_chains_from_the_signature(java_ri, peers, pki, tmp_path):
    """Why the RI is anchored at our issuing CA: anchored at our root only, it cannot reach our leaf although
    the intermediate travels in the CMS signature (RI 8.0.0 uses anchors, AIA and resolvers only)."""
    msg = our_seal(peers, tmp_path / "ours.eml")
    res = ri_unseal(java_ri, peers, msg, anchor=pki.root_pem)
    assert res["strict"]["certificates_in_signature"] >= 2  # leaf + intermediate are in the signature
    assert not res.ok
    assert res.error_code == "TrustError.NoTrustedRecipients"


def test_ri_cannot_open_oaep_sha256(java_ri, peers, tmp_path):
    """RI 8.0.0 unwraps RSA-OAEP only with default (SHA-1) parameters: why OAEP-SHA256 is never our default."""
    msg = our_seal(peers, tmp_path / "ours.eml", key_transport="rsa-oaep-sha256")
    res = ri_unseal(java_ri, peers, msg)
    assert not res.ok
    assert res.error_code == "AgentError.UntrustedMessage"  # the RI's "could not decrypt"


def test_ri_cannot_open_aes_gcm(java_ri, peers, tmp_path):
    """PIT-8: RI 8.0.0 has no AuthEnvelopedData, so AES-GCM must stay opt-in per peer."""
    msg = our_seal(peers, tmp_path / "ours.eml", cipher="aes256-gcm")
    res = ri_unseal(java_ri, peers, msg)
    assert not res.ok
    assert res.error_code == "AgentError.UntrustedMessage"


# --- RI -> ours ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enc", "digest"), [("AES128", "SHA256"), ("AES256", "SHA256"), ("AES256", "SHA384")]
)
def test_we_decrypt_and_verify_ri_message(java_ri, peers, tmp_path, enc, digest):
    sealed = ri_seal(java_ri, peers, tmp_path / "ri.eml", enc=enc, digest=digest)
    assert sealed.ok, sealed.report
    assert sealed["envelope"]["content_encryption_oid"] == AES_OID[enc.lower() + "-cbc"]
    # RI 8.0.0 always wraps the content key with RSA PKCS#1 v1.5 (no OAEP option on its encrypt path).
    assert [r["key_encryption"] for r in sealed["envelope"]["recipients"]] == [
        "rsa-pkcs1v15"
    ]  # recipient only
    assert sealed["outer"]["subject"] is None  # the RI puts no Subject outside the envelope

    report = our_unseal(peers, tmp_path / "ri.eml")

    assert report["ok"], report
    assert report["decrypted"] is True
    assert report["signature"] == "valid"
    assert report["digest"] == digest.lower()  # the RI spells micalg "sha256"/"sha384" (no hyphen)
    assert report["signer"]["trusted"] is True
    assert THEIRS in report["signer"]["subject"]
    assert report["wrapped"] is True
    assert report["from"] == THEIRS and report["to"] == [OURS]
    [att] = report["attachments"]
    assert att["filename"] == "ccd.xml"
    assert att["sha256"] == sha256(peers.ccda)


def test_we_reject_ri_message_from_untrusted_signer(java_ri, peers, tmp_path):
    """Negative control: without the RI's root as anchor our side must refuse the same message."""
    sealed = ri_seal(java_ri, peers, tmp_path / "ri.eml")
    assert sealed.ok, sealed.report
    proc = bbdirect(
        "unseal", str(tmp_path / "ri.eml"),
        "--cert", str(peers.ours.cert),
        "--key", str(peers.ours.key),
        "--anchor", str(peers.ours.anchor),
        "--json",
    )  # fmt: skip
    report = json.loads(proc.stdout)
    assert proc.returncode != 0 and not report["ok"]
    assert report["signature"] == "valid"
    assert report["signer"]["trusted"] is False
    assert report["error"]["code"]


def test_ri_refuses_to_sign_with_sha1(java_ri, peers, tmp_path):
    """The RI cannot be configured for SHA-1 (its cryptographer refuses the digest), so there is no
    RI-made SHA-1 message to feed our side; our SHA-1 rejection is covered by the OpenSSL interop tests."""
    res = ri_seal(java_ri, peers, tmp_path / "ri.eml", digest="SHA1")
    assert not res.ok
    assert res["error"]["type"] == "IllegalArgumentException"
    assert "not allowed" in res["error"]["message"]
    assert not (tmp_path / "ri.eml").exists()


# --- third party: OpenSSL, which also proves the harness itself ------------------------------------------


def openssl_message(
    p: Peers, d: Path, *, md: str = "sha256", cipher: str = "-aes256", oaep: bool = False
) -> Path:
    """A wrapped Direct message made by ``openssl cms`` from our identity to the RI's."""
    openssl = need("openssl")
    inner = (
        f"From: {p.ours.address}\r\nTo: {p.ri.address}\r\nSubject: test\r\nMessage-ID: <openssl-{md}@bbd.example>\r\n"
        "Date: Thu, 26 Nov 2026 06:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n'
        "--b1\r\nContent-Type: application/xml\r\nContent-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="ccd.xml"\r\n\r\nPGEvPg==\r\n--b1--\r\n'
    )
    (d / "wrapped.ent").write_bytes(b"Content-Type: message/rfc822\r\n\r\n" + inner.encode())
    subprocess.run(
        [openssl, "cms", "-sign", "-md", md, "-in", d / "wrapped.ent", "-signer", p.ours.cert,
         "-inkey", p.ours.key, "-out", d / "signed.ent"],
        check=True, capture_output=True,
    )  # fmt: skip
    keyopt = ["-keyopt", "rsa_padding_mode:oaep"] if oaep else []
    out = d / f"openssl-{md}.eml"
    subprocess.run(
        [openssl, "cms", "-encrypt", cipher, "-in", d / "signed.ent", "-from", p.ours.address,
         "-to", p.ri.address, "-subject", "Direct message", "-out", out, "-recip", p.ri.cert, *keyopt],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


@pytest.mark.service("openssl")
@pytest.mark.parametrize(("cipher", "oaep"), [("-aes128", False), ("-aes256", True)])
def test_ri_accepts_openssl_message(java_ri, peers, tmp_path, cipher, oaep):
    res = ri_unseal(java_ri, peers, openssl_message(peers, tmp_path, cipher=cipher, oaep=oaep))
    assert res.ok, res.report
    assert res["strict"]["ok"], res["strict"]
    assert res["attachments"][0]["sha256"] == hashlib.sha256(b"<a/>").hexdigest()


@pytest.mark.service("openssl")
def test_ri_strict_check_rejects_sha1_signature(java_ri, peers, tmp_path):
    """PIT-6. Finding: RI 8.0.0's processIncoming pipeline verifies with BouncyCastle only and lets a SHA-1
    signature through; the RI's strong-digest rule lives in SMIMECryptographerImpl.checkSignature, which
    rejects it. Both are pinned, so a change in the RI shows up here."""
    res = ri_unseal(java_ri, peers, openssl_message(peers, tmp_path, md="sha1"))
    assert res["strict"]["ok"] is False
    assert res["strict"]["digest_oids"] == ["1.3.14.3.2.26"]
    assert "1.3.14.3.2.26 is not allowed" in res["strict"]["error"]["message"]
    assert res.ok, (
        "RI 8.0.0's agent pipeline accepted SHA-1 before; if it now rejects, update docs/interop.md"
    )


@pytest.mark.service("openssl")
def test_openssl_decrypts_and_verifies_ri_message(java_ri, peers, tmp_path):
    openssl = need("openssl")
    sealed = ri_seal(java_ri, peers, tmp_path / "ri.eml")
    assert sealed.ok, sealed.report
    dec = subprocess.run(
        [openssl, "cms", "-decrypt", "-in", tmp_path / "ri.eml", "-recip", peers.ours.cert,
         "-inkey", peers.ours.key, "-out", tmp_path / "dec.ent"],
        capture_output=True, check=False,
    )  # fmt: skip
    assert dec.returncode == 0, dec.stderr
    ver = subprocess.run(
        [openssl, "cms", "-verify", "-in", tmp_path / "dec.ent", "-CAfile", peers.ri.anchor,
         "-out", tmp_path / "inner.eml"],
        capture_output=True, check=False,
    )  # fmt: skip
    assert ver.returncode == 0, ver.stderr
    assert b"Content-Disposition: attachment; filename=ccd.xml" in (tmp_path / "inner.eml").read_bytes()


# --- MDN round trip (Implementation Guide for Delivery Notification in Direct) ---------------------------


def ri_mdn(java_ri: JavaRI, p: Peers, message: Path, out: Path, disposition: str):
    return java_ri.run(
        "mdn",
        in_=message,
        cert=p.ri.cert,
        key=p.ri.key,
        anchor=p.ours.anchor,
        peer_cert=p.ours.cert,
        disposition=disposition,
        out=out,
    )


@pytest.mark.parametrize("disposition", ["processed", "dispatched", "failed"])
def test_ri_mdn_for_our_message_opens_on_our_side(java_ri, peers, tmp_path, disposition):
    msg = our_seal(peers, tmp_path / "ours.eml")
    mdn = ri_mdn(java_ri, peers, msg, tmp_path / "mdn.eml", disposition)
    assert mdn.ok, mdn.report
    fields = mdn["mdn"]
    assert fields["disposition"] == f"automatic-action/MDN-sent-automatically;{disposition}"
    assert fields["final_destination_delivery"] is (disposition == "dispatched")
    original_id = mdn["original_message_id"]
    assert fields["original_message_id"] == original_id

    report = our_unseal(peers, tmp_path / "mdn.eml")

    assert report["ok"], report
    assert report["signature"] == "valid" and report["signer"]["trusted"] is True
    assert report["from"] == THEIRS and report["to"] == [OURS]
    # ... and our MDN parser reads the RI's report as the delivery tracker will.
    result = our_unseal_api(peers, tmp_path / "mdn.eml")
    assert result.ok and result.is_notification
    our_id = parse_message(msg.read_bytes())["Message-ID"]
    assert parse_notifications(result.message) == [
        Notification(
            kind="mdn",
            original_message_id=norm_message_id(our_id),
            final_recipient=THEIRS,
            disposition=disposition,
            final_destination=disposition == "dispatched",
            detail=None,
        )
    ]


@pytest.mark.parametrize("disposition", ["processed", "dispatched", "failed"])
def test_our_mdn_for_ri_message_is_accepted_by_ri(java_ri, peers, tmp_path, disposition):
    sealed = ri_seal(java_ri, peers, tmp_path / "ri.eml")
    assert sealed.ok, sealed.report
    received = our_unseal_api(peers, tmp_path / "ri.eml")
    assert received.ok, received.error
    # The RI asked for final-destination delivery (Disposition-Notification-Options), so dispatched carries it.
    assert requests_final_destination(received.message)
    mdn = build_mdn(
        original_message_id=received.message_id or "",
        original_sender=THEIRS,
        final_recipient=OURS,
        disposition=disposition,
        final_destination=requests_final_destination(received.message),
        subject=f"{disposition.capitalize()}: Health information",
    )
    ours = Identity.load(peers.ours.cert, peers.ours.key)
    (tmp_path / "mdn.eml").write_bytes(seal(mdn, ours, load_certificate_files([peers.ri.cert])[:1]))

    res = ri_unseal(java_ri, peers, tmp_path / "mdn.eml")

    assert res.ok, res.report
    assert res["strict"]["ok"], res["strict"]
    assert res["message"]["content_type"] == "multipart/report"
    fields = res["mdn"]
    assert fields["disposition"] == f"automatic-action/MDN-sent-automatically;{disposition}"
    assert norm_message_id(fields["original_message_id"]) == norm_message_id(sealed["message_id"])
    assert fields["final_recipient"] == f"rfc822; {OURS}"
    assert fields["final_destination_delivery"] is (disposition == "dispatched")
    if disposition == "failed":  # "failed", never "error" (nhin-d #265), with the reason in Failure:
        assert fields["fields"]["Failure"]


# --- the product path: DirectAgent over real SMTP, delivery tracked from the RI's MDNs --------------------


def _agent(p: Peers, sink) -> DirectAgent:
    return DirectAgent(
        [Identity.load(p.ours.cert, p.ours.key)],
        trust=load_certificate_files([p.ri.anchor]),
        transport=SmtpTarget(host=sink.host, port=sink.port, starttls="off", timeout=30),
    )


@pytest.mark.service("smtp")
def test_agent_tracks_delivery_from_ri_mdns(java_ri, peers, smtp_sink, tmp_path):
    agent = _agent(peers, smtp_sink)
    ri_leaf = load_certificate_files([peers.ri.cert])[:1]
    receipt = agent.send(
        OURS,
        [THEIRS],
        "Health information",
        "Attached.",
        [Attachment.from_file(str(peers.ccda))],
        recipient_certs=ri_leaf,
    )
    [delivered] = smtp_sink.wait_for(1)
    assert (delivered.mail_from, delivered.rcpt_tos) == (OURS, [THEIRS])  # MSG-5: envelope = headers
    (tmp_path / "sent.eml").write_bytes(delivered.data)

    states = []
    for disposition in ("processed", "dispatched"):
        mdn = ri_mdn(java_ri, peers, tmp_path / "sent.eml", tmp_path / f"{disposition}.eml", disposition)
        assert mdn.ok, mdn.report
        result = agent.receive((tmp_path / f"{disposition}.eml").read_bytes(), THEIRS, [OURS])
        assert result.unsealed.ok, result.unsealed.error
        assert result.mdns_sent == []  # never an MDN for an MDN (MDN-1)
        states.append(agent.tracker.get(receipt.message_id).recipients[THEIRS].state)
    assert states == [DeliveryState.PROCESSED, DeliveryState.DISPATCHED]


@pytest.mark.service("smtp")
def test_agent_answers_ri_message_with_mdns_the_ri_accepts(java_ri, peers, smtp_sink, tmp_path):
    agent = _agent(peers, smtp_sink)
    sealed = ri_seal(java_ri, peers, tmp_path / "ri.eml")
    assert sealed.ok, sealed.report

    result = agent.receive((tmp_path / "ri.eml").read_bytes(), THEIRS, [OURS])
    assert result.ok, result.unsealed.error
    agent.dispatched(result)  # the final destination has it; the RI asked for final-destination delivery
    assert result.mdns_sent == ["processed", "dispatched"]

    mdns = smtp_sink.wait_for(2)
    for received, disposition in zip(mdns, ("processed", "dispatched"), strict=True):
        assert (received.mail_from, received.rcpt_tos) == (OURS, [THEIRS])
        path = tmp_path / f"our-{disposition}.eml"
        path.write_bytes(received.data)
        res = ri_unseal(java_ri, peers, path)
        assert res.ok, res.report
        assert res["mdn"]["disposition"] == f"automatic-action/MDN-sent-automatically;{disposition}"
        assert norm_message_id(res["mdn"]["original_message_id"]) == norm_message_id(sealed["message_id"])
        assert res["mdn"]["final_destination_delivery"] is (disposition == "dispatched")

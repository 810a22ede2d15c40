"""The structural checks ONC's ETT Direct validator applies to a sent message (direct.md MSG-6..MSG-10, PIT-5/18).

Each test decrypts our own output with the recipient key and inspects the bytes the way ETT does
(``DirectMessageValidator``, ``DetailedPartValidation``), including its naive ``;`` splitting of header values.
"""

from __future__ import annotations

import base64
import re

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives.serialization import Encoding

from direct.message import DNO_VALUE, Attachment, build_message, parse_message
from direct.smime import Identity, SealOptions, envelope, mime, seal

CCDA = b"<ClinicalDocument xmlns='urn:hl7-org:v3'>" + "é".encode() * 600 + b"</ClinicalDocument>"


@pytest.fixture(scope="module")
def ids(pki):
    return Identity.from_issued(pki.address("alice@a.example")), Identity.from_issued(
        pki.address("bob@b.example")
    )


def sealed(ids, digest="sha256", subject="Lab results for Jane Doe"):
    alice, bob = ids
    msg = build_message(
        "alice@a.example",
        ["bob@b.example"],
        subject,
        "Text with ünïcode and a very long line " * 20,
        [Attachment("ccd.xml", "application/xml", CCDA)],
    )
    raw = seal(msg, alice, [bob.cert], SealOptions(digest=digest))
    body = raw.split(b"\r\n\r\n", 1)[1]
    decrypted = envelope.decrypt(base64.b64decode(body), [bob])
    return msg, raw, decrypted


def header_value(block: bytes, name: str) -> str:
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", block).decode()
    return next(
        ln.split(":", 1)[1].strip()
        for ln in unfolded.split("\r\n")
        if ln.lower().startswith(name.lower() + ":")
    )


def test_outer_envelope_headers(ids):
    msg, raw, _ = sealed(ids)
    head = raw.split(b"\r\n\r\n", 1)[0]
    ctype = header_value(head, "Content-Type")
    params = [p.strip() for p in ctype.split(";")]  # ETT splits on ';'
    assert params[0] == "application/pkcs7-mime"  # DTS 133a
    assert "smime-type=enveloped-data" in params  # DTS 202
    assert 'name="smime.p7m"' in params  # DTS 201
    assert 'filename="smime.p7m"' in [
        p.strip() for p in header_value(head, "Content-Disposition").split(";")
    ]  # DTS 203
    assert header_value(head, "Content-Transfer-Encoding") == "base64"
    for name in ("From", "To", "Date", "Message-ID", "MIME-Version"):
        assert header_value(head, name)
    assert header_value(head, "Message-ID") == msg["Message-ID"]


def test_outer_headers_carry_no_phi(ids):
    _, raw, _ = sealed(ids)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"Jane Doe" not in head and header_value(head, "Subject") == "Direct message"


def test_inner_signed_entity_shape(ids):
    _, _, entity = sealed(ids)
    head, body = entity.split(b"\r\n\r\n", 1)
    ctype = header_value(head, "Content-Type")
    params = [p.strip() for p in ctype.split(";")]
    assert params[0] == "multipart/signed"  # DTS 133b
    assert 'protocol="application/pkcs7-signature"' in params  # DTS 205, literal and quoted (PIT-18)
    assert "micalg=sha-256" in params  # DTS 160, RFC 5751 spelling
    assert b"Content-Transfer-Encoding" not in head  # multipart entities carry no CTE (MSG-8)
    boundary = next(p for p in params if p.startswith("boundary=")).split("=", 1)[1].strip('"')
    assert len(boundary) <= 70 and boundary.isascii() and ":" not in boundary  # DTS 137-140
    assert (
        body.count(b"\r\n--" + boundary.encode() + b"\r\n") == 2
        and body.count(b"--" + boundary.encode() + b"--") == 1
    )


@pytest.mark.parametrize(
    ("digest", "micalg"), [("sha256", "sha-256"), ("sha384", "sha-384"), ("sha512", "sha-512")]
)
def test_micalg_matches_every_signer_info(ids, digest, micalg):
    """PIT-5 / DTS 165: micalg equals the SignerInfo digest algorithm."""
    _, _, entity = sealed(ids, digest)
    parts = mime.split_signed(entity)
    assert parts.micalg == micalg and parts.protocol == "application/pkcs7-signature"
    der = mime.decode_entity_body(parts.signature_entity)
    signed = cms.ContentInfo.load(der)["content"]
    assert [si["digest_algorithm"]["algorithm"].native for si in signed["signer_infos"]] == [digest]


def test_signature_part_and_signed_data(ids, pki):
    alice, _ = ids
    _, _, entity = sealed(ids)
    parts = mime.split_signed(entity)
    sig_head = parts.signature_entity.split(b"\r\n\r\n", 1)[0]
    assert header_value(sig_head, "Content-Type").startswith("application/pkcs7-signature")
    assert header_value(sig_head, "Content-Transfer-Encoding") == "base64"  # DTS 206
    info = cms.ContentInfo.load(mime.decode_entity_body(parts.signature_entity))
    assert info["content_type"].native == "signed_data"
    sd = info["content"]
    assert sd["encap_content_info"]["content_type"].native == "data"  # DTS 166
    assert sd["encap_content_info"]["content"].native is None  # detached (DTS 182/183)
    certs = [c.chosen.dump() for c in sd["certificates"]]
    assert alice.cert.public_bytes(Encoding.DER) in certs  # DTS 167
    assert len(certs) == 2  # signer + intermediate
    si = sd["signer_infos"][0]
    assert si["sid"].name == "issuer_and_serial_number"  # DTS 174
    attrs = {a["type"].native for a in si["signed_attrs"]}
    assert {"content_type", "message_digest", "signing_time"} <= attrs  # DTS 178-180


def test_wrapped_part_carries_the_original_message(ids):
    msg, _, entity = sealed(ids)
    parts = mime.split_signed(entity)
    head, inner_bytes = parts.content.split(b"\r\n\r\n", 1)
    assert header_value(head, "Content-Type") == "message/rfc822"  # MSG-3
    inner = parse_message(inner_bytes)
    for name in ("From", "To", "Date", "Subject", "Message-ID"):
        assert inner[name] == msg[name]
    assert f"Disposition-Notification-Options: {DNO_VALUE}\r\n".encode() in inner_bytes  # DN-1, unfolded


def test_only_7bit_qp_base64_and_crlf_inside(ids):
    _, raw, entity = sealed(ids)
    parts = mime.split_signed(entity)
    inner = parse_message(parts.content.split(b"\r\n\r\n", 1)[1])
    for part in inner.walk():
        if part.is_multipart():
            continue
        assert part.get("Content-Transfer-Encoding", "7bit").lower() in {"7bit", "quoted-printable", "base64"}
    xml = next(p for p in inner.walk() if p.get_content_type() == "application/xml")
    assert xml["Content-Transfer-Encoding"] == "base64" and xml.get_payload(decode=True) == CCDA
    for blob in (raw, entity):
        assert blob.isascii()
        assert b"\n" not in blob.replace(b"\r\n", b"") and b"\r" not in blob.replace(b"\r\n", b"")
        assert max(len(line) for line in blob.split(b"\r\n")) <= 998


def test_message_ids_unique(ids):
    seen = {sealed(ids)[0]["Message-ID"] for _ in range(3)}
    assert len(seen) == 3
    for mid in seen:
        assert re.fullmatch(r"<[^\s<>@]+@[^\s<>@]+>", mid)  # MSG-2

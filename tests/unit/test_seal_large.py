"""Sealing large payloads: the streamed pieces give the same bytes as the straightforward construction, a
5 MB message round-trips, and seal's peak memory is bounded relative to the payload (issue 14).

No timing here: speed is measured by bench/direct_bench.py.
"""

from __future__ import annotations

import base64
import email.generator
import gc
import hashlib
import io
import os
import random
import tracemalloc
from email.message import EmailMessage
from types import SimpleNamespace

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from direct.message import WIRE, Attachment, build_message, canonical_crlf, parse_message, to_bytes
from direct.smime import Identity, SealOptions, envelope, mime, seal, signing, unseal

MB5 = 5_000_000


@pytest.fixture(scope="module")
def people(pki):
    return Identity.from_issued(pki.address("alice@a.example")), Identity.from_issued(
        pki.address("bob@b.example")
    )


def big_payload(size: int) -> bytes:
    """XML-looking, incompressible (like the bench's payload)."""
    return (b"<ClinicalDocument>" + random.Random(size).randbytes(size).hex().encode())[:size]


def stock_bytes(msg) -> bytes:
    """What to_bytes returned before: the email package's own generator."""
    return canonical_crlf(msg.as_bytes(policy=WIRE))


def _messages():
    yield build_message("a@a.example", ["b@b.example"], "Plain", "one line")
    yield build_message(
        "a@a.example",
        ["b@b.example"],
        "Caf\u00e9 \u00fcber",
        "Caf\u00e9 long line that needs soft breaks " * 30 + "\n\nsecond paragraph\n",
        [
            Attachment("ccd.xml", "application/xml", b"<x>" + "\u00e9".encode() * 4000 + b"</x>"),
            Attachment("scan.pdf", "application/pdf", os.urandom(70_001)),
        ],
        cc_addrs=["c@c.example"],
    )
    # a text body with bare CR and CRLF (converted by the generator's line-ending pass)
    yield build_message("a@a.example", ["b@b.example"], "CR", "a\rb\r\nc\nd\r")
    # a parsed message whose 8-bit body is kept as surrogates (the generator writes it back raw)
    yield parse_message(
        b"From: a@a.example\r\nTo: b@b.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b"caf\xc3\xa9\r\nline two\nline three\r\n"
    )
    report = EmailMessage(policy=WIRE)
    report["From"] = "a@a.example"
    report["To"] = "b@b.example"
    report.set_content("notification text\n")
    report.make_mixed()
    report.replace_header("Content-Type", "multipart/report; report-type=disposition-notification")
    part = EmailMessage(policy=WIRE)
    part["Content-Type"] = "message/disposition-notification"
    part.set_payload(
        "Final-Recipient: rfc822; b@b.example\nDisposition: automatic-action/MDN-sent-automatically; processed\n"
    )
    report.attach(part)
    yield report


@pytest.mark.parametrize("msg", list(_messages()), ids=["plain", "attachments", "bare-cr", "8bit", "report"])
def test_to_bytes_is_the_email_generators_output(msg):
    expected = stock_bytes(msg)  # first: a multipart gets its boundary here, as it did before
    assert to_bytes(msg) == expected


def test_to_bytes_draws_a_boundary_the_content_does_not_contain(monkeypatch):
    """A fresh multipart gets its boundary in to_bytes; one that occurs in the content is drawn again."""
    clash = "clashing-boundary-0001"  # survives quoted-printable unchanged
    msg = build_message(
        "a@a.example",
        ["b@b.example"],
        "s",
        f"the text mentions --{clash} on its own line\n--{clash}\n",
        [Attachment("a.txt", "text/plain", b"x")],
    )
    draws = iter([clash, "===============0000000000000000002=="])
    monkeypatch.setattr(
        email.generator.Generator, "_make_boundary", classmethod(lambda cls, text=None: next(draws))
    )
    raw = to_bytes(msg)
    assert msg.get_boundary() == "===============0000000000000000002=="
    assert raw == stock_bytes(msg)
    parsed = parse_message(raw)
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/plain"]
    assert clash in parsed.get_body(("plain",)).get_content()


def test_to_bytes_of_a_fresh_message_is_what_the_email_package_writes_with_that_boundary():
    msg = next(m for m in _messages() if m.is_multipart())
    raw = to_bytes(msg)  # draws the boundary
    assert msg.get_boundary() is not None
    assert raw == stock_bytes(msg)


_SIZES = [0, 1, 56, 57, 58, 114, mime.BLOCK_BYTES - 1, mime.BLOCK_BYTES, 3 * mime.BLOCK_BYTES + 5]


@pytest.mark.parametrize(
    ("size", "chunk"),
    [(size, chunk) for size in _SIZES for chunk in (1, 57, 1000, 1 << 20) if chunk > 1 or size < 1000],
)
def test_streamed_base64_is_encodebytes_with_crlf(size, chunk):
    data = os.urandom(size)
    expected = base64.encodebytes(data).replace(b"\n", b"\r\n")
    out = io.BytesIO()
    mime.write_base64_lines((data[i : i + chunk] for i in range(0, size, chunk)), out.write)
    assert out.getvalue() == expected == mime.base64_lines(data)
    assert mime.base64_lines_length(size) == len(expected)


def _reference_der(ours: bytes, plaintext: bytes, cek: bytes, iv_or_nonce: bytes, cipher: str) -> bytes:
    """The DER asn1crypto dumps for the same EnvelopedData/AuthEnvelopedData (the pre-streaming code)."""
    alg_id, _, aead = envelope.CIPHERS[cipher]
    infos = cms.ContentInfo.load(ours)["content"]["recipient_infos"]  # RSA padding is randomised
    if aead:
        enc = Cipher(algorithms.AES(cek), modes.GCM(iv_or_nonce)).encryptor()
        ciphertext = enc.update(plaintext) + enc.finalize()
        params = envelope.GCMParameters({"aes_nonce": iv_or_nonce, "aes_icvlen": 16})
        auth = cms.AuthEnvelopedData(
            {
                "version": "v0",
                "recipient_infos": infos,
                "auth_encrypted_content_info": {
                    "content_type": "data",
                    "content_encryption_algorithm": {"algorithm": alg_id, "parameters": params},
                    "encrypted_content": ciphertext,
                },
                "mac": enc.tag,
            }
        )
        return cms.ContentInfo({"content_type": "authenticated_enveloped_data", "content": auth}).dump()
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(cek), modes.CBC(iv_or_nonce)).encryptor()
    enveloped = cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": infos,
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": alg_id, "parameters": iv_or_nonce},
                "encrypted_content": enc.update(padded) + enc.finalize(),
            },
        }
    )
    return cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()


@pytest.mark.parametrize("cipher", list(envelope.CIPHERS))
@pytest.mark.parametrize("size", [0, 15, 16, 17, 100, 127, 128, envelope.CHUNK + 3, 70_000])
def test_streamed_envelope_is_the_der_asn1crypto_builds(people, monkeypatch, cipher, size):
    alice, bob = people
    randomness = random.Random(size)
    drawn: list[bytes] = []

    def urandom(n: int) -> bytes:
        drawn.append(randomness.randbytes(n))
        return drawn[-1]

    data = os.urandom(size)
    monkeypatch.setattr(envelope, "os", SimpleNamespace(urandom=urandom))  # the CEK and IV/nonce only
    first, middle = min(10, size), max(min(10, size), size // 2)
    parts = [data[:first], data[first:middle], b"", data[middle:]]
    assert b"".join(parts) == data
    stream = envelope.encrypt_stream(parts, [bob.cert, alice.cert], cipher=cipher)
    ours = b"".join(stream)
    cek, iv_or_nonce = drawn
    assert len(ours) == stream.length
    assert ours == _reference_der(ours, data, cek, iv_or_nonce, cipher)
    assert envelope.decrypt(ours, [bob]) == data


def test_signature_over_parts_is_the_signature_over_their_concatenation(people):
    alice, _ = people
    parts = [b"Content-Type: message/rfc822\r\n\r\n", b"x" * 1000, b"", b"tail\r\n"]
    joined = b"".join(parts)
    for der in (signing.sign_detached(parts, alice), signing.sign_detached(joined, alice)):
        report = signing.verify_detached(joined, der)
        assert report.signer == alice.cert


def _peak(fn) -> tuple[object, int]:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_5mb_message_round_trips_with_bounded_memory(pki, people):
    """The payload is held once while sealing: the serialised inner message (1.37x the payload after
    base64) plus the sealed output (1.87x, written into one buffer of its final size). The ciphertext, the
    joined signed entity and the base64 of the envelope never exist whole: before this, seal's peak was
    13.7x the payload."""
    alice, bob = people
    data = big_payload(MB5)
    msg = build_message(
        "alice@a.example",
        ["bob@b.example"],
        "Large",
        "See attachment.",
        [Attachment("ccd.xml", "application/xml", data)],
    )
    raw, peak = _peak(lambda: seal(msg, alice, [bob.cert]))
    assert peak < 4.0 * MB5, f"seal peaked at {peak / MB5:.2f}x the payload"
    assert len(raw) < 1.9 * MB5

    inner = to_bytes(msg)
    raw_from_bytes, peak_bytes = _peak(lambda: seal(inner, alice, [bob.cert]))
    # from bytes the caller holds, seal adds only its output (1.87x) and a few chunks
    assert peak_bytes < 2.5 * MB5, f"seal(bytes) peaked at {peak_bytes / MB5:.2f}x the payload"

    for sealed in (raw, raw_from_bytes):
        result = unseal(sealed, [bob], [pki.root.cert])
        assert result.ok, result.error
        assert [(a.filename, a.sha256) for a in result.attachments] == [
            ("ccd.xml", hashlib.sha256(data).hexdigest())
        ]
        _head, body = sealed.split(b"\r\n\r\n", 1)
        assert all(len(line) <= 76 for line in body.split(b"\r\n"))
        assert base64.encodebytes(base64.b64decode(body)).replace(b"\n", b"\r\n") == body


@pytest.mark.parametrize("cipher", ["aes256-gcm", "aes128-cbc"])
def test_other_ciphers_round_trip_large(pki, people, cipher):
    alice, bob = people
    data = big_payload(envelope.CHUNK * 3 + 7)
    msg = build_message(
        "alice@a.example", ["bob@b.example"], "s", "t", [Attachment("a.xml", "application/xml", data)]
    )
    result = unseal(seal(msg, alice, [bob.cert], SealOptions(cipher=cipher)), [bob], [pki.root.cert])
    assert result.ok, result.error
    assert result.attachments[0].data == data

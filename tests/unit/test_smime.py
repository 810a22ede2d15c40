"""direct.smime: seal/unseal round trips, algorithm matrix, and every rejection with its own code."""

from __future__ import annotations

import base64
import random

import pytest
from asn1crypto import algos, cms

from direct.errors import DirectError
from direct.message import Attachment, build_message, to_bytes
from direct.smime import Identity, SealOptions, envelope, mime, seal, signing, unseal
from direct.smime.envelope import CIPHERS, KEY_TRANSPORTS

CCDA = (
    b'<?xml version="1.0"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">caf\xc3\xa9 '
    + b"x" * 3000
    + b"</ClinicalDocument>\n"
)


@pytest.fixture(scope="module")
def people(pki):
    return {
        "alice": Identity.from_issued(pki.address("alice@a.example")),
        "bob": Identity.from_issued(pki.address("bob@b.example")),
        "bob_domain": Identity.from_issued(pki.domain("b.example")),
        "carol": Identity.from_issued(pki.address("carol@c.example")),
    }


def inner(**kw):
    args = {
        "from_addr": "alice@a.example",
        "to_addrs": ["bob@b.example"],
        "subject": "Records for Bob",
        "text": "Sent at the request of the patient.",
        "attachments": [Attachment("ccd.xml", "application/xml", CCDA)],
    }
    args.update(kw)
    return build_message(**args)


def outer_headers(msg) -> bytes:
    return (
        f"From: {msg['From']}\r\nTo: {msg['To']}\r\nMessage-ID: {msg['Message-ID']}\r\n"
        "Subject: Direct message\r\nMIME-Version: 1.0\r\n"
    ).encode()


def envelope_entity(entity: bytes, certs, msg, **kw) -> bytes:
    """Encrypt an arbitrary (possibly tampered) entity into a complete outer message."""
    der = envelope.encrypt(entity, certs, **kw)
    headers, body = mime.build_enveloped_body(der)
    return outer_headers(msg) + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n" + body


def signed_entity(msg, signer: Identity, digest="sha256", *, wrap=True) -> bytes:
    content = (b"Content-Type: message/rfc822\r\n\r\n" + to_bytes(msg)) if wrap else to_bytes_body(msg)
    return mime.build_signed(content, signing.sign_detached(content, signer, digest), digest)


def to_bytes_body(msg) -> bytes:
    """The MIME entity of a message without its RFC 5322 headers (an *unwrapped* signed body)."""
    raw = to_bytes(msg)
    head, body = raw.split(b"\r\n\r\n", 1)
    ctype = next(ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-type"))
    return ctype + b"\r\nMIME-Version: 1.0\r\n\r\n" + body


def open_(raw, people, who="bob", anchors=None, pki=None, **kw):
    ids = [people[w] for w in ([who] if isinstance(who, str) else who)]
    return unseal(raw, ids, anchors if anchors is not None else [pki.root.cert], **kw)


def test_round_trip_wrapped_with_attachment(pki, people):
    msg = inner()
    raw = seal(msg, people["alice"], [people["bob"].cert])
    res = open_(raw, people, pki=pki, mail_from="alice@a.example", rcpt_tos=["bob@b.example"])
    assert res.ok, res.error
    assert (res.decrypted, res.signature, res.digest, res.wrapped) == (True, "valid", "sha256", True)
    assert res.signer_trusted and res.signer == people["alice"].cert
    assert res.from_addr == "alice@a.example" and res.to_addrs == ["bob@b.example"]
    assert res.message_id == msg["Message-ID"]
    assert [(a.filename, a.content_type, a.data) for a in res.attachments] == [
        ("ccd.xml", "application/xml", CCDA)
    ]
    assert res.message["Subject"] == "Records for Bob"
    js = res.to_json()
    assert js["ok"] and js["error"] is None and js["signer"]["trusted"] is True
    assert set(js) == {
        "ok",
        "decrypted",
        "signature",
        "digest",
        "signer",
        "wrapped",
        "from",
        "to",
        "attachments",
        "error",
    }


@pytest.mark.parametrize("cipher", sorted(CIPHERS))
@pytest.mark.parametrize("transport", KEY_TRANSPORTS)
def test_algorithm_matrix_round_trips(pki, people, cipher, transport):
    raw = seal(
        inner(), people["alice"], [people["bob"].cert], SealOptions(cipher=cipher, key_transport=transport)
    )
    res = open_(raw, people, pki=pki)
    assert res.ok, res.error
    assert (b"smime-type=authEnveloped-data" in raw) == cipher.endswith("gcm")


@pytest.mark.parametrize("digest", ["sha384", "sha512"])
def test_stronger_digests_accepted(pki, people, digest):
    raw = seal(inner(), people["alice"], [people["bob"].cert], SealOptions(digest=digest))
    res = open_(raw, people, pki=pki)
    assert res.ok and res.digest == digest


def test_sender_can_read_its_own_copy_and_opt_out(pki, people):
    raw = seal(inner(), people["alice"], [people["bob"].cert])
    assert open_(raw, people, "alice", pki=pki).ok
    raw = seal(inner(), people["alice"], [people["bob"].cert], SealOptions(encrypt_to_self=False))
    assert open_(raw, people, "alice", pki=pki).error.code == "decrypt_failed"


def test_encrypted_to_every_recipient_cert(pki, people):
    msg = inner(to_addrs=["bob@b.example", "carol@c.example"])
    raw = seal(msg, people["alice"], [people["bob"].cert, people["bob_domain"].cert, people["carol"].cert])
    for who in ("bob", "bob_domain", "carol"):
        assert open_(raw, people, who, pki=pki).decrypted


def test_decrypts_with_whichever_identity_fits(pki, people):
    raw = seal(inner(), people["alice"], [people["bob_domain"].cert])
    res = open_(raw, people, ["bob", "bob_domain"], pki=pki)
    assert res.ok


def test_wrong_recipient_rejected(pki, people):
    raw = seal(inner(), people["alice"], [people["bob"].cert])
    res = open_(raw, people, "carol", pki=pki)
    assert not res.ok and not res.decrypted and res.error.code == "decrypt_failed"


def test_sha1_signature_rejected_unless_switched_on(pki, people):
    raw = seal(inner(), people["alice"], [people["bob"].cert], SealOptions(digest="sha1"))
    res = open_(raw, people, pki=pki)
    assert res.error.code == "weak_digest" and res.signature == "invalid" and res.digest == "sha1"
    assert res.signer == people["alice"].cert
    assert open_(raw, people, pki=pki, accept_sha1=True).ok


def test_tampered_content_rejected(pki, people):
    msg = inner()
    entity = signed_entity(msg, people["alice"])
    tampered = entity.replace(b"Sent at the request", b"Sent at the bequest", 1)
    assert tampered != entity
    res = open_(envelope_entity(tampered, [people["bob"].cert], msg), people, pki=pki)
    assert res.decrypted and res.signature == "invalid" and res.error.code == "bad_signature"


def test_header_whitespace_change_breaks_signature(pki, people):
    """PIT-2: verification uses the exact bytes; a re-folded header must fail, not silently pass."""
    msg = inner()
    entity = signed_entity(msg, people["alice"])
    changed = entity.replace(b"Subject: Records for Bob", b"Subject:  Records for Bob", 1)
    res = open_(envelope_entity(changed, [people["bob"].cert], msg), people, pki=pki)
    assert res.error.code == "bad_signature"


def test_signature_by_another_key_rejected(pki, people):
    """ALG-10: a signature made with key A but carrying certificate B must fail."""
    impostor = Identity(people["alice"].cert, people["carol"].key, people["alice"].chain)
    msg = inner()
    entity = signed_entity(msg, impostor)
    res = open_(envelope_entity(entity, [people["bob"].cert], msg), people, pki=pki)
    assert res.error.code == "bad_signature"


def test_untrusted_and_expired_signers_rejected(pki, people):
    other_root = pki.ca("Other Root")
    stranger = Identity.from_issued(pki.address("alice@a.example", issuer=other_root))
    raw = seal(inner(), stranger, [people["bob"].cert])
    res = open_(raw, people, pki=pki)
    assert res.signature == "valid" and not res.signer_trusted and res.error.code == "untrusted_signer"
    assert res.to_json()["signer"]["trusted"] is False
    expired = Identity.from_issued(pki.expired("alice@a.example"))
    res = open_(seal(inner(), expired, [people["bob"].cert]), people, pki=pki)
    assert res.error.code == "untrusted_signer" and res.error.detail == "expired"


def test_signer_with_short_rsa_key_rejected(pki, people):
    """ALG-8: a signature by a 1024-bit key is not acceptable (ETT CERT_LESS_THAN_2048_BITS); the refusal
    has its own code, ``weak_key`` (issue 12 #5; it was ``untrusted_signer`` with detail ``weak_key``)."""
    weak = Identity.from_issued(pki.address("alice@a.example", bits=1024))
    res = open_(seal(inner(), weak, [people["bob"].cert]), people, pki=pki)
    assert res.signature != "valid" and res.error.code == "weak_key"
    assert res.to_json()["signer"]["trusted"] is False


def test_signer_not_bound_to_from_rejected(pki, people):
    raw = seal(inner(), people["carol"], [people["bob"].cert])  # From alice, signed by carol's cert
    assert open_(raw, people, pki=pki).error.code == "not_bound"


def test_domain_bound_signer_accepted(pki, people):
    signer = Identity.from_issued(pki.domain("a.example"))
    assert open_(seal(inner(), signer, [people["bob"].cert]), people, pki=pki).ok


@pytest.mark.parametrize(
    ("mail_from", "rcpts"),
    [
        ("mallory@a.example", ["bob@b.example"]),
        ("alice@a.example", ["eve@b.example"]),
        ("", ["bob@b.example"]),
    ],
)
def test_routing_tamper_rejected(pki, people, mail_from, rcpts):
    raw = seal(inner(), people["alice"], [people["bob"].cert])
    res = open_(raw, people, pki=pki, mail_from=mail_from, rcpt_tos=rcpts)
    assert res.signature == "valid" and res.error.code == "routing_tamper"


def test_envelope_matching_is_case_insensitive_and_allows_cc(pki, people):
    msg = inner(cc_addrs=["carol@c.example"])
    raw = seal(msg, people["alice"], [people["bob"].cert, people["carol"].cert])
    res = open_(raw, people, "carol", pki=pki, mail_from="<Alice@A.example>", rcpt_tos=["Carol@c.example"])
    assert res.ok, res.error


def test_unwrapped_message_accepted(pki, people):
    msg = inner()
    entity = signed_entity(msg, people["alice"], wrap=False)
    res = open_(
        envelope_entity(entity, [people["bob"].cert], msg),
        people,
        pki=pki,
        mail_from="alice@a.example",
        rcpt_tos=["bob@b.example"],
    )
    assert res.ok, res.error
    assert not res.wrapped and res.from_addr == "alice@a.example"
    assert [a.data for a in res.attachments] == [CCDA]


def test_transport_converted_crlf_to_lf_still_verifies(pki, people):
    """PIT-1: a relay that stored the message with bare LF must not break the signature."""
    raw = seal(inner(), people["alice"], [people["bob"].cert])
    assert open_(raw.replace(b"\r\n", b"\n"), people, pki=pki).ok


@pytest.mark.parametrize("variant", ["no-preamble", "epilogue", "whitespace-after-boundary"])
def test_multipart_signed_framing_variants(pki, people, variant):
    """PIT-3: preamble, epilogue and transport padding belong to the framing, not the signed content."""
    msg = inner()
    entity = signed_entity(msg, people["alice"])
    head, body = entity.split(b"\r\n\r\n", 1)
    boundary = head.split(b'boundary="')[1].split(b'"')[0]
    if variant == "no-preamble":
        body = body[body.index(b"--" + boundary) :]
    elif variant == "epilogue":
        body += b"trailing epilogue text\r\n"
    else:
        body = body.replace(b"--" + boundary + b"\r\n", b"--" + boundary + b"  \r\n")
    res = open_(envelope_entity(head + b"\r\n\r\n" + body, [people["bob"].cert], msg), people, pki=pki)
    assert res.ok, res.error


def test_opaque_signed_data_accepted(pki, people):
    msg = inner()
    content = b"Content-Type: message/rfc822\r\n\r\n" + to_bytes(msg)
    sd = cms.ContentInfo.load(signing.sign_detached(content, people["alice"]))
    sd["content"]["encap_content_info"]["content"] = content
    der = sd.dump(force=True)
    entity = (
        b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + mime.base64_lines(der)
    )
    res = open_(envelope_entity(entity, [people["bob"].cert], msg), people, pki=pki)
    assert res.ok, res.error


def test_unsigned_and_unencrypted_rejected(pki, people):
    msg = inner()
    unsigned = b"Content-Type: message/rfc822\r\n\r\n" + to_bytes(msg)
    res = open_(envelope_entity(unsigned, [people["bob"].cert], msg), people, pki=pki)
    assert res.decrypted and res.signature == "missing" and res.error.code == "missing_signature"
    res = open_(to_bytes(msg), people, pki=pki)
    assert not res.decrypted and res.error.code == "not_encrypted"


def test_malformed_oaep_parameters_rejected_not_retried(pki, people):
    """PIT-7: unknown OAEP hash must be an algorithm error, never a silent PKCS#1 v1.5 retry."""
    raw = seal(inner(), people["alice"], [people["bob"].cert], SealOptions(key_transport="rsa-oaep-sha256"))
    body = raw.split(b"\r\n\r\n", 1)[1]
    info = cms.ContentInfo.load(base64.b64decode(body))
    for ri in info["content"]["recipient_infos"]:
        ri.chosen["key_encryption_algorithm"]["parameters"] = algos.RSAESOAEPParams(
            {
                "hash_algorithm": {"algorithm": "md5"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "md5"}},
            }
        )
    broken = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + mime.base64_lines(info.dump(force=True))
    assert open_(broken, people, pki=pki).error.code == "unsupported_algorithm"


def test_refuses_unusable_recipient_certs(pki, people):
    weak = pki.address("weak@b.example", bits=1024)
    sign_only = pki.wrong_key_usage("signonly@b.example")
    ec_cert = pki.address("ec@b.example", key_kind="ec")
    for issued, code in [
        (weak, "wrong_key_usage"),
        (sign_only, "wrong_key_usage"),
        (ec_cert, "unsupported_algorithm"),
    ]:
        with pytest.raises(Exception) as err:
            seal(inner(), people["alice"], [issued.cert])
        assert err.value.code == code


def test_ecdsa_signer_verifies(pki, people):
    ec_alice = Identity.from_issued(pki.address("alice@a.example", key_kind="ec"))
    res = open_(seal(inner(), ec_alice, [people["bob"].cert]), people, pki=pki)
    assert res.ok, res.error


def test_garbage_and_mutations_never_crash(pki, people):
    """Random corruption of the envelope or of the decrypted entity yields a coded error (or a still-valid
    message when only unused bytes changed), never an exception: the SMTP endpoint must answer 5xx, not 4xx."""
    rng = random.Random(7)
    msg = inner()
    raw = seal(msg, people["alice"], [people["bob"].cert])
    head, body = raw.split(b"\r\n\r\n", 1)
    entity = envelope.decrypt(base64.b64decode(body), [people["bob"]])
    cases = [
        b"",
        b"garbage",
        raw[:200],
        raw[:-500],
        head + b"\r\n\r\n!!!not base64",
        envelope_entity(b"", [people["bob"].cert], msg),
        envelope_entity(b"Content-Type: multipart/signed\r\n\r\n", [people["bob"].cert], msg),
        envelope_entity(entity[:300], [people["bob"].cert], msg),
    ]
    for _ in range(120):
        mutated = bytearray(entity)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        cases.append(envelope_entity(bytes(mutated), [people["bob"].cert], msg))
    parts = mime.split_signed(entity)
    sig_der = mime.decode_entity_body(parts.signature_entity)
    sig_b64 = mime.base64_lines(sig_der)
    for _ in range(150):  # corrupt the SignedData DER itself (certificates, names, attributes)
        der = bytearray(sig_der)
        for _ in range(rng.randint(1, 3)):
            der[rng.randrange(len(der))] = rng.randrange(256)
        bad = entity.replace(sig_b64, mime.base64_lines(bytes(der)))
        cases.append(envelope_entity(bad, [people["bob"].cert], msg))
    for _ in range(60):
        mutated = bytearray(raw)
        mutated[rng.randrange(len(head) + 4, len(mutated))] = rng.choice(b"ABCDEFabcdef0123+/")
        cases.append(bytes(mutated))
    codes = set()
    for case in cases:
        res = open_(case, people, pki=pki)
        assert res.ok or res.error is not None
        codes.add(res.error.code if res.error else "ok")
    assert {"malformed_message", "bad_signature", "not_encrypted"} <= codes


def _with_unknown_signature_oid(cert):
    """The same certificate with its signature algorithm OID (sha256WithRSAEncryption, twice in the DER)
    changed to an unassigned one: it still parses, but cryptography cannot name its hash."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    sha256_rsa = bytes.fromhex("06092a864886f70d01010b")
    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(sha256_rsa) == 2
    return x509.load_der_x509_certificate(der.replace(sha256_rsa, sha256_rsa[:-1] + b"\x63"))


def test_signer_cert_with_unknown_signature_algorithm_is_a_coded_rejection(pki, people):
    """A signer certificate whose signature algorithm we cannot name (a mutation found this) is an
    untrusted signer, never an exception out of unseal (the SMTP endpoint would answer 451 forever)."""
    alice = people["alice"]
    odd = Identity(_with_unknown_signature_oid(alice.cert), alice.key, alice.chain)
    res = open_(seal(inner(), odd, [people["bob"].cert]), people, pki=pki)
    assert res.signature == "valid"
    assert res.error is not None and res.error.code == "untrusted_signer"


def test_errors_decided_with_our_key_before_a_valid_signature_are_marked_secret_dependent(pki, people):
    """The flag the SMTP endpoint uses to avoid a padding oracle: set for verdicts reached by decrypting
    with our key before a signature verified, not for public facts nor for post-signature verdicts."""
    wrong = open_(seal(inner(), people["alice"], [people["carol"].cert]), people, pki=pki)
    assert wrong.error.code == "decrypt_failed" and wrong.error.secret_dependent is False
    unsigned = envelope_entity(b"Content-Type: text/plain\r\n\r\nhi", [people["bob"].cert], inner())
    assert open_(unsigned, people, pki=pki).error.secret_dependent is True
    other_root = pki.ca("Other Root 2")
    stranger = Identity.from_issued(pki.address("alice@a.example", issuer=other_root))
    res = open_(seal(inner(), stranger, [people["bob"].cert]), people, pki=pki)
    assert res.error.code == "untrusted_signer" and res.error.secret_dependent is False


def test_gcm_tag_shorter_than_rfc5084_allows_is_refused(pki, people):
    """RFC 5084 §3.1: aes-ICVlen is 12..16 octets. A 4-byte tag (which cryptography will check if told to)
    makes forging the authenticated content a 2^32 job; it is refused instead of accepted."""
    der = envelope.encrypt(b"Content-Type: text/plain\r\n\r\nhi", [people["bob"].cert], cipher="aes128-gcm")
    info = cms.ContentInfo.load(der)
    info["content"]["mac"] = info["content"]["mac"].native[:4]
    with pytest.raises(DirectError):
        envelope.decrypt(cms.ContentInfo.load(info.dump(force=True)).dump(), [people["bob"]])


def test_private_key_operations_per_message_are_bounded(pki, people):
    """Every RecipientInfo naming our certificate costs an RSA private-key operation; with OAEP a bad one
    fails and the next is tried. A message carrying thousands of them (anyone can send us one) was a CPU
    denial of service. After a few failed unwraps we stop: here the good RecipientInfo sits behind ten bad
    ones and is not reached."""
    der = envelope.encrypt(
        b"Content-Type: text/plain\r\n\r\nhi", [people["bob"].cert], key_transport="rsa-oaep"
    )
    info = cms.ContentInfo.load(der)
    good = info["content"]["recipient_infos"][0]
    bad = []
    for _ in range(10):
        copy = cms.RecipientInfo.load(good.dump())
        # all-zero keys: RecipientInfos is a DER SET OF, sorted on output, and these sort before the good one
        # (unless its ciphertext starts with two zero bytes, p = 2^-16)
        copy.chosen["encrypted_key"] = bytes(256)
        bad.append(copy)
    info["content"]["recipient_infos"] = cms.RecipientInfos([*bad, cms.RecipientInfo.load(good.dump())])
    crafted = cms.ContentInfo.load(info.dump(force=True)).dump()
    with pytest.raises(DirectError) as err:
        envelope.decrypt(crafted, [people["bob"]])
    assert err.value.code == "decrypt_failed"
    # the same good RecipientInfo behind two bad ones still decrypts
    info["content"]["recipient_infos"] = cms.RecipientInfos([*bad[:2], cms.RecipientInfo.load(good.dump())])
    assert envelope.decrypt(cms.ContentInfo.load(info.dump(force=True)).dump(), [people["bob"]]).endswith(
        b"hi"
    )


def test_signer_infos_per_signature_are_bounded(people):
    """Each SignerInfo costs a public-key verification; a Direct message has one. A SignedData with more
    than MAX_SIGNERS is refused as malformed rather than verified signer by signer."""
    content = b"Content-Type: text/plain\r\n\r\nhi"
    info = cms.ContentInfo.load(signing.sign_detached(content, people["alice"]))
    one = info["content"]["signer_infos"][0]
    info["content"]["signer_infos"] = cms.SignerInfos(
        [cms.SignerInfo.load(one.dump()) for _ in range(signing.MAX_SIGNERS + 1)]
    )
    with pytest.raises(DirectError) as err:
        signing.verify_detached(content, cms.ContentInfo.load(info.dump(force=True)).dump())
    assert err.value.code == "malformed_message"


def test_signed_message_without_from_is_refused(pki, people):
    """RFC 5322 §3.6: From is required. A validly signed message without any From skipped the signer
    binding check (CERT-1) altogether and was accepted from any trusted signer."""
    msg = inner()
    del msg["From"]
    del msg["Disposition-Notification-To"]
    res = open_(seal(msg, people["alice"], [people["bob"].cert]), people, pki=pki)
    assert not res.ok and res.error.code == "malformed_message"


def test_carried_certificate_with_invalid_version_is_a_coded_error(pki, people):
    """Fuzzing found another exception type escaping unseal: cryptography's x509.InvalidVersion (not a
    ValueError) for a carried certificate whose version is 99. It is now a coded malformed message."""
    msg = inner()
    entity = signed_entity(msg, people["alice"])
    parts = mime.split_signed(entity)
    sig_der = mime.decode_entity_body(parts.signature_entity)
    version_v3 = bytes.fromhex("a003020102")
    assert version_v3 in sig_der
    bad = entity.replace(
        mime.base64_lines(sig_der),
        mime.base64_lines(sig_der.replace(version_v3, bytes.fromhex("a003020163"), 1)),
    )
    res = open_(envelope_entity(bad, [people["bob"].cert], msg), people, pki=pki)
    assert res.error is not None and res.error.code in {"malformed_message", "bad_signature"}

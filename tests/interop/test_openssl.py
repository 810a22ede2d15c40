"""Interop with OpenSSL's ``openssl cms`` as the independent S/MIME peer (both directions).

Ours -> OpenSSL: ``openssl cms -decrypt`` then ``-verify`` succeed and the attachment is byte-identical.
OpenSSL -> ours: SHA-256 + AES-128/256-CBC, RSA-OAEP (SHA-1 and SHA-256), AES-GCM, unwrapped and
quoted-printable messages are accepted; SHA-1, tampered, untrusted-signer, wrong-recipient and 3DES messages
are rejected with their own codes. OpenSSL writes LF line endings, which also exercises PIT-1.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from direct.message import Attachment, build_message, parse_message, to_bytes
from direct.smime import Identity, SealOptions, seal, unseal
from tests.support.services import need

pytestmark = pytest.mark.service("openssl")
CCDA = (
    b'<?xml version="1.0"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
    + b"\xc3\xa9" * 2000
    + b"</ClinicalDocument>\n"
)


@pytest.fixture(scope="module")
def ossl():
    return need("openssl", "apt-get install openssl")


@pytest.fixture(scope="module")
def world(pki, tmp_path_factory):
    d = tmp_path_factory.mktemp("ossl")
    issued = {
        "alice": pki.address("alice@a.example"),
        "bob": pki.address("bob@b.example"),
        "carol": pki.address("carol@c.example"),
        "stranger": pki.address("alice@a.example", issuer=pki.ca("Stranger Root")),
    }
    files = {name: i.write(d, name) for name, i in issued.items()}
    root = pki.write_cert(pki.root.cert, "root")
    ids = {name: Identity.from_issued(i) for name, i in issued.items()}
    return {"dir": d, "files": files, "root": root, "ids": ids}


def run(ossl, *args, data: bytes | None = None) -> bytes:
    proc = subprocess.run([ossl, *args], input=data, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def inner(**kw):
    args = {
        "from_addr": "alice@a.example",
        "to_addrs": ["bob@b.example"],
        "subject": "Records",
        "text": "Caf\u00e9 text body that is long enough to need quoted-printable soft line breaks " * 3,
        "attachments": [Attachment("ccd.xml", "application/xml", CCDA)],
    }
    args.update(kw)
    return build_message(**args)


# --- ours -> OpenSSL --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cipher", "transport"),
    [
        ("aes256-cbc", "rsa"),
        ("aes128-cbc", "rsa"),
        ("aes256-cbc", "rsa-oaep"),
        ("aes128-cbc", "rsa-oaep-sha256"),
        ("aes256-gcm", "rsa"),
    ],
)
def test_openssl_decrypts_and_verifies_ours(ossl, world, cipher, transport):
    bob_cert, bob_key = world["files"]["bob"]
    raw = seal(
        inner(),
        world["ids"]["alice"],
        [world["ids"]["bob"].cert],
        SealOptions(cipher=cipher, key_transport=transport),
    )
    decrypted = run(ossl, "cms", "-decrypt", "-recip", str(bob_cert), "-inkey", str(bob_key), data=raw)
    content = run(ossl, "cms", "-verify", "-CAfile", str(world["root"]), "-purpose", "any", data=decrypted)
    wrapped = parse_message(content)
    assert wrapped.get_content_type() == "message/rfc822"
    original = wrapped.get_payload(0)
    xml = next(p for p in original.walk() if p.get_content_type() == "application/xml")
    assert xml.get_payload(decode=True) == CCDA


def test_openssl_decrypts_and_verifies_our_5mb_message(ossl, world):
    """Issue 14: the streamed seal of a 5 MB document is what ``openssl cms -decrypt`` / ``-verify`` read."""
    bob_cert, bob_key = world["files"]["bob"]
    big = (b"<ClinicalDocument>" + os.urandom(2_500_000).hex().encode())[:5_000_000]
    raw = seal(
        inner(attachments=[Attachment("ccd.xml", "application/xml", big)]),
        world["ids"]["alice"],
        [world["ids"]["bob"].cert],
    )
    decrypted = run(ossl, "cms", "-decrypt", "-recip", str(bob_cert), "-inkey", str(bob_key), data=raw)
    content = run(ossl, "cms", "-verify", "-CAfile", str(world["root"]), "-purpose", "any", data=decrypted)
    original = parse_message(content).get_payload(0)
    xml = next(p for p in original.walk() if p.get_content_type() == "application/xml")
    assert xml.get_payload(decode=True) == big


def test_openssl_rejects_ours_when_signed_content_altered(ossl, world):
    """Control for the test above: OpenSSL's verify really checks our digest."""
    bob_cert, bob_key = world["files"]["bob"]
    raw = seal(inner(), world["ids"]["alice"], [world["ids"]["bob"].cert])
    decrypted = run(ossl, "cms", "-decrypt", "-recip", str(bob_cert), "-inkey", str(bob_key), data=raw)
    tampered = decrypted.replace(b"Subject: Records", b"Subject: Recordz", 1)
    with pytest.raises(AssertionError, match="failed"):
        run(ossl, "cms", "-verify", "-CAfile", str(world["root"]), "-purpose", "any", data=tampered)


# --- OpenSSL -> ours --------------------------------------------------------------------------------------
def openssl_message(
    ossl,
    world,
    *,
    signer="alice",
    recipient="bob",
    md="sha256",
    cipher="-aes256",
    keyopts=(),
    wrap=True,
    tamper=False,
    msg=None,
) -> bytes:
    d: Path = world["dir"]
    msg = msg or inner()
    if wrap:
        content = b"Content-Type: message/rfc822\r\n\r\n" + to_bytes(msg)
    else:
        head, body = to_bytes(msg).split(b"\r\n\r\n", 1)
        ctype = next(ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-type"))
        content = ctype + b"\r\n\r\n" + body
    cert, key = world["files"][signer]
    chain = d / f"{signer}-chain.pem"
    chain.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in world["ids"][signer].chain))
    extra = ["-certfile", str(chain)] if world["ids"][signer].chain else []
    signed = run(
        ossl, "cms", "-sign", "-signer", str(cert), "-inkey", str(key), *extra, "-md", md, data=content
    )
    if tamper:
        tampered = signed.replace(b"text body", b"text bodY", 1)
        assert tampered != signed
        signed = tampered
    recip_cert = world["files"][recipient][0]
    recip_leaf = d / f"{recipient}-leaf.pem"
    recip_leaf.write_bytes(
        recip_cert.read_bytes().split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    )
    args = [
        "cms",
        "-encrypt",
        cipher,
        "-from",
        "alice@a.example",
        "-to",
        "bob@b.example",
        "-subject",
        "Direct message",
        "-recip",
        str(recip_leaf),
    ]
    for opt in keyopts:
        args += ["-keyopt", opt]
    return run(ossl, *args, data=signed)


def ours(world, raw, **kw):
    return unseal(
        raw, [world["ids"]["bob"]], [x509.load_pem_x509_certificate(world["root"].read_bytes())], **kw
    )


@pytest.mark.parametrize(
    ("cipher", "keyopts"),
    [
        ("-aes256", ()),
        ("-aes128", ()),
        ("-aes256", ("rsa_padding_mode:oaep",)),
        ("-aes128", ("rsa_padding_mode:oaep", "rsa_oaep_md:sha256", "rsa_mgf1_md:sha256")),
        ("-aes-256-gcm", ()),
        ("-aes-128-gcm", ("rsa_padding_mode:oaep",)),
    ],
)
def test_we_accept_openssl_messages(ossl, world, cipher, keyopts):
    raw = openssl_message(ossl, world, cipher=cipher, keyopts=keyopts)
    res = ours(world, raw, mail_from="alice@a.example", rcpt_tos=["bob@b.example"])
    assert res.ok, res.error
    assert res.wrapped and res.digest == "sha256"
    assert [(a.filename, a.data) for a in res.attachments] == [("ccd.xml", CCDA)]
    assert "Caf\u00e9 text body" in res.message.get_body(("plain",)).get_content()  # QP decoded


def test_we_accept_unwrapped_openssl_message(ossl, world):
    res = ours(world, openssl_message(ossl, world, wrap=False))
    assert res.ok, res.error
    assert not res.wrapped and res.from_addr == "alice@a.example"
    assert [a.data for a in res.attachments] == [CCDA]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"md": "sha1"}, "weak_digest"),
        ({"md": "md5"}, "weak_digest"),
        ({"tamper": True}, "bad_signature"),
        ({"tamper": True, "wrap": False}, "bad_signature"),
        ({"signer": "stranger"}, "untrusted_signer"),
        ({"recipient": "carol"}, "decrypt_failed"),
        ({"cipher": "-des3"}, "unsupported_algorithm"),
    ],
)
def test_we_reject_bad_openssl_messages(ossl, world, kwargs, code):
    res = ours(world, openssl_message(ossl, world, **kwargs))
    assert not res.ok and res.error.code == code


def test_sha1_accepted_with_the_legacy_switch(ossl, world):
    assert ours(world, openssl_message(ossl, world, md="sha1"), accept_sha1=True).ok

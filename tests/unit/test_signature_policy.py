"""Key and algorithm policy of signature verification (issue 12 #5): RSA signers under 2048 bits and
RSASSA-PSS signatures whose PSS or MGF1 hash is SHA-1, or differs from the declared digest, are refused —
through the real ``unseal`` of complete Direct messages (signed, wrapped, encrypted)."""

from __future__ import annotations

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from direct.message import build_message, to_bytes
from direct.smime import Identity, envelope, mime, seal, signing, unseal
from direct.smime.identity import Identity as IdentityType

_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


@pytest.fixture(scope="module")
def people(pki) -> dict[str, IdentityType]:
    return {
        "alice": Identity.from_issued(pki.address("alice@a.example")),
        "bob": Identity.from_issued(pki.address("bob@b.example")),
    }


def _inner():
    return build_message(
        from_addr="alice@a.example",
        to_addrs=["bob@b.example"],
        subject="Records",
        text="Sent at the request of the patient.",
        attachments=[],
    )


def _pss_signature(
    content: bytes,
    signer: IdentityType,
    *,
    digest: str = "sha256",
    pss_hash: str | None = "sha256",
    mgf_hash: str | None = "sha256",
    salt: int = 32,
) -> bytes:
    """A detached SignedData over ``content`` whose SignerInfo is RSASSA-PSS (RFC 4056) with the given PSS
    hash and MGF1 hash; ``None`` leaves the parameter out (its RFC 4055 default: SHA-1)."""
    info = cms.ContentInfo.load(signing.sign_detached(content, signer, digest))
    signer_info = info["content"]["signer_infos"][0]
    params: dict = {"salt_length": salt}
    if pss_hash is not None:
        params["hash_algorithm"] = {"algorithm": pss_hash}
    if mgf_hash is not None:
        params["mask_gen_algorithm"] = {"algorithm": "mgf1", "parameters": {"algorithm": mgf_hash}}
    real_pss = _HASHES[pss_hash or "sha1"]()
    real_mgf = _HASHES[mgf_hash or "sha1"]()
    to_sign = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    signature = signer.key.sign(to_sign, padding.PSS(padding.MGF1(real_mgf), salt), real_pss)  # type: ignore[union-attr]
    signer_info["signature_algorithm"] = {"algorithm": "rsassa_pss", "parameters": params}
    signer_info["signature"] = signature
    return info.dump(force=True)


def _message(people, **pss) -> bytes:
    """A complete Direct message from alice to bob, signed with RSASSA-PSS as ``pss`` says."""
    msg = _inner()
    content = b"Content-Type: message/rfc822\r\n\r\n" + to_bytes(msg)
    digest = pss.get("digest", "sha256")
    entity = mime.build_signed(content, _pss_signature(content, people["alice"], **pss), digest)
    der = envelope.encrypt(entity, [people["bob"].cert])
    headers, body = mime.build_enveloped_body(der)
    outer = (
        f"From: {msg['From']}\r\nTo: {msg['To']}\r\nMessage-ID: {msg['Message-ID']}\r\nMIME-Version: 1.0\r\n"
    )
    return outer.encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n" + body


def _open(raw: bytes, people, pki, **kw):
    return unseal(raw, [people["bob"]], [pki.root.cert], **kw)


def test_pss_with_sha256_throughout_is_accepted(people, pki) -> None:
    """The positive control: RSASSA-PSS with SHA-256 as digest, PSS hash and MGF1 hash verifies."""
    res = _open(_message(people), people, pki)
    assert res.ok and res.signature == "valid" and res.digest == "sha256", res.error


@pytest.mark.parametrize(
    ("pss_hash", "mgf_hash"),
    [("sha1", "sha1"), ("sha1", "sha256"), ("sha256", "sha1"), (None, None)],
    ids=["pss-sha1-mgf-sha1", "pss-sha1", "mgf1-sha1", "rfc4055-defaults-sha1"],
)
def test_pss_with_sha1_inside_is_refused_as_weak_digest(people, pki, pss_hash, mgf_hash) -> None:
    """A SHA-256 digest with SHA-1 inside the PSS padding (hash or MGF1, or both left at their SHA-1
    defaults) was accepted while a SHA-1 digest was refused: SHA-1 anywhere in the signature is weak."""
    res = _open(_message(people, pss_hash=pss_hash, mgf_hash=mgf_hash, salt=20), people, pki)
    assert not res.ok and res.error is not None and res.error.code == "weak_digest", res.error


@pytest.mark.parametrize(
    ("pss_hash", "mgf_hash"), [("sha384", "sha384"), ("sha256", "sha512"), ("sha512", "sha256")]
)
def test_pss_hashes_must_match_the_declared_digest(people, pki, pss_hash, mgf_hash) -> None:
    res = _open(_message(people, pss_hash=pss_hash, mgf_hash=mgf_hash), people, pki)
    assert not res.ok and res.error is not None and res.error.code == "unsupported_algorithm", res.error


def test_pss_sha1_only_with_the_explicit_option_and_a_sha1_digest(people, pki) -> None:
    sha1 = _message(people, digest="sha1", pss_hash="sha1", mgf_hash="sha1", salt=20)
    assert _open(sha1, people, pki).error.code == "weak_digest"  # type: ignore[union-attr]
    res = _open(sha1, people, pki, accept_sha1=True)
    assert res.ok and res.digest == "sha1", res.error
    # the option allows SHA-1, not a PSS hash other than the declared digest
    mixed = _message(people, digest="sha256", pss_hash="sha1", mgf_hash="sha1", salt=20)
    assert _open(mixed, people, pki, accept_sha1=True).error.code == "unsupported_algorithm"  # type: ignore[union-attr]


def test_signer_with_rsa_1024_key_is_refused_with_its_own_code(people, pki) -> None:
    """ALG-8 (AS 1.3 via the Java RI's isAllowedCertKey; ETT CERT_LESS_THAN_2048_BITS): the refusal has
    its own code, ``weak_key``, distinct from an untrusted signer."""
    weak = Identity.from_issued(pki.address("alice@a.example", bits=1024))
    res = _open(seal(_inner(), weak, [people["bob"].cert]), people, pki)
    assert not res.ok and res.error is not None and res.error.code == "weak_key", res.error
    assert "1024" in res.error.message
    assert res.to_json()["signer"]["trusted"] is False


def test_verify_detached_refuses_rsa_1024_signer(pki) -> None:
    weak = Identity.from_issued(pki.address("alice@a.example", bits=1024))
    der = signing.sign_detached(b"hello\r\n", weak)
    with pytest.raises(Exception) as err:
        signing.verify_detached(b"hello\r\n", der)
    assert getattr(err.value, "code", None) == "weak_key"

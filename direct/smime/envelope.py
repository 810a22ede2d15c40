"""CMS EnvelopedData / AuthEnvelopedData (RFC 5652 §6, RFC 5083/5084) for Direct.

Outbound: AES-256-CBC (default) or AES-128-CBC content encryption (ALG-4), one KeyTransRecipientInfo per
recipient certificate with RSA PKCS#1 v1.5 (default) or RSA-OAEP (SHA-1 default parameters, or explicit
SHA-256) key transport (ALG-5). AES-GCM (AuthEnvelopedData) is available but never the default: the Direct
Java RI 8.1 cannot read it (PIT-8).

Inbound: whichever of our identities a RecipientInfo names; AES-CBC and AES-GCM; PKCS#1 v1.5 and OAEP with
absent, SHA-1 or SHA-256 parameters (PIT-7). Malformed OAEP parameters are rejected, never "retried" as v1.5.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from asn1crypto import algos, cms, core
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as apadding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from direct.errors import (
    DecryptionFailed,
    MalformedMessage,
    NoCertificate,
    UnsupportedAlgorithm,
    WrongKeyUsage,
)
from direct.smime.identity import Identity

#: Content ciphers we can produce, by option name -> (asn1crypto algorithm id, key bytes, AEAD?).
CIPHERS = {
    "aes256-cbc": ("aes256_cbc", 32, False),
    "aes128-cbc": ("aes128_cbc", 16, False),
    "aes256-gcm": ("aes256_gcm", 32, True),
    "aes128-gcm": ("aes128_gcm", 16, True),
}
#: Key transport options: PKCS#1 v1.5, OAEP with default (SHA-1) parameters, OAEP with explicit SHA-256.
KEY_TRANSPORTS = ("rsa", "rsa-oaep", "rsa-oaep-sha256")
_CBC_IN = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}
_GCM_IN = {"aes128_gcm": 16, "aes192_gcm": 24, "aes256_gcm": 32}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
#: ``detail`` of the DecryptionFailed raised when no RecipientInfo names any of our certificates.
NOT_FOR_US = "not_for_us"
#: Private-key operations tried per message before giving up: each RecipientInfo naming our certificate
#: costs one RSA decryption, and a sender may put thousands in a message (CPU denial of service).
MAX_UNWRAP_ATTEMPTS = 4
#: RSA keys below this size are refused for key transport (ALG-8).
MIN_RSA_BITS = 2048


class GCMParameters(core.Sequence):  # type: ignore[misc]  # asn1crypto ships no type information
    """RFC 5084 §3.2 GCMParameters (not modelled by asn1crypto)."""

    _fields = [("aes_nonce", core.OctetString), ("aes_icvlen", core.Integer, {"default": 12})]


def _asn1_cert(cert: x509.Certificate) -> ax509.Certificate:
    return ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _oaep_algorithm(transport: str) -> dict[str, Any]:
    if transport == "rsa":
        return {"algorithm": "rsaes_pkcs1v15", "parameters": core.Null()}
    if transport == "rsa-oaep":
        # RFC 4055 §4.1: all-default parameters (SHA-1, MGF1-SHA-1, empty label) encode as an empty SEQUENCE.
        return {"algorithm": "rsaes_oaep", "parameters": algos.RSAESOAEPParams.load(b"\x30\x00")}
    return {
        "algorithm": "rsaes_oaep",
        "parameters": algos.RSAESOAEPParams(
            {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            }
        ),
    }


def _padding_for(transport: str) -> apadding.AsymmetricPadding:
    if transport == "rsa":
        return apadding.PKCS1v15()
    # OAEP with RFC 4055 default parameters uses SHA-1 inside the padding only (not a signature digest).
    h = hashes.SHA1() if transport == "rsa-oaep" else hashes.SHA256()  # noqa: S303
    return apadding.OAEP(mgf=apadding.MGF1(h), algorithm=h, label=None)


def check_recipient_cert(cert: x509.Certificate) -> None:
    """Refuse certificates we must not encrypt to: non-RSA, RSA < 2048 bits (ALG-8; AS 1.3 via the Java RI's
    isAllowedCertKey), no keyEncipherment (CERT-4; RFC 5280 §4.2.1.3, RFC 5750 §4.4.2)."""
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise UnsupportedAlgorithm("only RSA recipient certificates are supported for key transport")
    if public.key_size < MIN_RSA_BITS:
        raise WrongKeyUsage(f"recipient RSA key has {public.key_size} bits; at least {MIN_RSA_BITS} required")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_encipherment:  # RFC 5750 §4.4.2
        raise WrongKeyUsage("recipient certificate does not allow keyEncipherment")


#: AES-GCM tag length we produce (RFC 5084 §3.2 aes-ICVlen 16).
_GCM_TAG = 16
#: The content-encryption modes we write: AES-CBC (AS 1.3 default) or AES-GCM (RFC 5084).
_Mode = modes.CBC | modes.GCM
#: Plaintext fed to the cipher per call when streaming (bounded working memory for large payloads).
CHUNK = 1 << 18


def _der_header(tag: int, length: int) -> bytes:
    """DER identifier + definite length octets (X.690 §8.1.3) for a value of ``length`` bytes."""
    if length < 0x80:
        return bytes((tag, length))
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets


#: AuthEnvelopedData mac: an OCTET STRING holding the GCM tag.
_MAC_HEADER = _der_header(0x04, _GCM_TAG)


def _recipient_infos(
    recipients: Sequence[x509.Certificate], cek: bytes, key_transport: str
) -> cms.RecipientInfos:
    infos = []
    seen: set[bytes] = set()
    for cert in recipients:
        fp = cert.fingerprint(hashes.SHA256())
        if fp in seen:
            continue
        seen.add(fp)
        check_recipient_cert(cert)
        acert = _asn1_cert(cert)
        infos.append(
            cms.RecipientInfo(
                name="ktri",
                value=cms.KeyTransRecipientInfo(
                    {
                        "version": "v0",
                        "rid": cms.RecipientIdentifier(
                            name="issuer_and_serial_number",
                            value=cms.IssuerAndSerialNumber(
                                {"issuer": acert.issuer, "serial_number": acert.serial_number}
                            ),
                        ),
                        "key_encryption_algorithm": _oaep_algorithm(key_transport),
                        "encrypted_key": cert.public_key().encrypt(cek, _padding_for(key_transport)),  # type: ignore[union-attr]  # RSA: check_recipient_cert
                    }
                ),
            )
        )
    return cms.RecipientInfos(infos)


class EncryptedStream:
    """The DER of a ContentInfo(EnvelopedData or AuthEnvelopedData), produced piece by piece.

    ``length`` is the exact DER length, known before any encryption (CBC: the PKCS#7-padded plaintext
    length; GCM: the plaintext length, then the mac OCTET STRING), so the definite-length headers come first
    and the ciphertext is encrypted in :data:`CHUNK` slices straight from the caller's parts: neither the
    joined plaintext nor the whole ciphertext ever exists in memory. The bytes are the DER asn1crypto dumps
    for the same structure (tests/unit/test_seal_stream.py compares them).
    """

    def __init__(self, prefix: bytes, parts: Sequence[bytes], engine: Cipher[_Mode], aead: bool) -> None:
        self._prefix, self._parts, self._engine, self._aead = prefix, parts, engine, aead
        plain = sum(len(p) for p in parts)
        # RFC 5652 §6.3: CBC content is PKCS#7 padded with 1..16 bytes, each equal to their count.
        self._pad = 0 if aead else 16 - plain % 16
        self.length = len(prefix) + plain + self._pad + (len(_MAC_HEADER) + _GCM_TAG if aead else 0)

    def __iter__(self) -> Iterator[bytes]:
        yield self._prefix
        encryptor = self._engine.encryptor()
        for part in self._parts:
            view = memoryview(part)
            for start in range(0, len(view), CHUNK):
                out = encryptor.update(view[start : start + CHUNK])
                if out:
                    yield out
        tail = encryptor.update(bytes((self._pad,)) * self._pad) if self._pad else b""
        yield tail + encryptor.finalize()
        if self._aead:
            yield _MAC_HEADER + encryptor.tag  # type: ignore[attr-defined]  # GCM (aead) only: AEADEncryptionContext


def encrypt_stream(
    parts: Sequence[bytes],
    recipients: Sequence[x509.Certificate],
    *,
    cipher: str = "aes256-cbc",
    key_transport: str = "rsa",
) -> EncryptedStream:
    """:func:`encrypt` of ``b"".join(parts)`` as an :class:`EncryptedStream` (iterate it once)."""
    if cipher not in CIPHERS:
        raise UnsupportedAlgorithm(f"cipher {cipher} is not supported")
    if key_transport not in KEY_TRANSPORTS:
        raise UnsupportedAlgorithm(f"key transport {key_transport} is not supported")
    if not recipients:
        raise NoCertificate("no recipient certificate to encrypt to")
    alg_id, key_len, aead = CIPHERS[cipher]
    cek = os.urandom(key_len)
    infos = _recipient_infos(recipients, cek, key_transport)
    plain = sum(len(p) for p in parts)
    params: object
    engine: Cipher[_Mode]
    if aead:
        nonce = os.urandom(12)
        engine = Cipher(algorithms.AES(cek), modes.GCM(nonce))
        params = GCMParameters({"aes_nonce": nonce, "aes_icvlen": _GCM_TAG})
        content_length, trailer_length = plain, len(_MAC_HEADER) + _GCM_TAG
        kind = "authenticated_enveloped_data"
    else:
        iv = os.urandom(16)
        engine = Cipher(algorithms.AES(cek), modes.CBC(iv))
        params = iv
        content_length, trailer_length = plain + 16 - plain % 16, 0
        kind = "enveloped_data"
    # RFC 5652 §6.1 EncryptedContentInfo: contentType, contentEncryptionAlgorithm, [0] IMPLICIT OCTET STRING
    # (RFC 5083 §2.1 reuses it as authEncryptedContentInfo; mac follows it, no authAttrs).
    eci = cms.EncryptedContentInfo(
        {"content_type": "data", "content_encryption_algorithm": {"algorithm": alg_id, "parameters": params}}
    )
    eci.dump()
    eci_fields = eci.contents + _der_header(0x80, content_length)
    fields = (
        cms.CMSVersion("v0").dump()
        + infos.dump()
        + _der_header(0x30, len(eci_fields) + content_length)
        + eci_fields
    )
    body_length = len(fields) + content_length + trailer_length
    body_header = _der_header(0x30, body_length)
    explicit_length = len(body_header) + body_length
    oid = cms.ContentType(kind).dump()
    explicit_header = _der_header(0xA0, explicit_length)
    outer_header = _der_header(0x30, len(oid) + len(explicit_header) + explicit_length)
    prefix = outer_header + oid + explicit_header + body_header + fields
    return EncryptedStream(prefix, parts, engine, aead)


def encrypt(
    content: bytes,
    recipients: Sequence[x509.Certificate],
    *,
    cipher: str = "aes256-cbc",
    key_transport: str = "rsa",
) -> bytes:
    """DER ContentInfo(EnvelopedData or AuthEnvelopedData) of ``content`` for every recipient certificate.

    ALG-4: AES-CBC content encryption (RFC 5751 §2.7: AES-128 CBC MUST, AES-256 CBC SHOULD+; RFC 3565 for
    the IV parameter); ALG-9: one KeyTransRecipientInfo per recipient certificate (RFC 5652 §6.2.1,
    issuerAndSerialNumber, version 0); ALG-6: AuthEnvelopedData/AES-GCM only on request (RFC 5083 §2.1,
    RFC 5084 §3.2). :func:`encrypt_stream` produces the same DER without holding it whole.
    """
    return b"".join(encrypt_stream([content], recipients, cipher=cipher, key_transport=key_transport))


def _matches(rid: cms.RecipientIdentifier, cert: x509.Certificate) -> bool:
    acert = _asn1_cert(cert)
    if rid.name == "issuer_and_serial_number":
        return bool(
            acert.issuer == rid.chosen["issuer"] and acert.serial_number == rid.chosen["serial_number"].native
        )
    if rid.name == "subject_key_identifier":
        return bool(acert.key_identifier == rid.chosen.native)
    return False


def _unwrap_key(ktri: cms.KeyTransRecipientInfo, identity: Identity) -> bytes:
    alg = ktri["key_encryption_algorithm"]
    name = alg["algorithm"].native
    key = identity.key
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DecryptionFailed("our key for this recipient is not RSA")
    if name == "rsaes_pkcs1v15":
        pad: apadding.AsymmetricPadding = apadding.PKCS1v15()
    elif name == "rsaes_oaep":
        try:
            params = alg["parameters"]
            if params.native is None:  # absent parameters = all defaults (RFC 4055 §4.1)
                params = algos.RSAESOAEPParams.load(b"\x30\x00")
            hash_name = params["hash_algorithm"]["algorithm"].native
            mgf = params["mask_gen_algorithm"]
            mgf_hash = mgf["parameters"]["algorithm"].native
            label = params["p_source_algorithm"]["parameters"].native or None
        except Exception as exc:
            raise UnsupportedAlgorithm("malformed RSA-OAEP parameters") from exc
        if mgf["algorithm"].native != "mgf1" or hash_name not in _HASHES or mgf_hash not in _HASHES:
            raise UnsupportedAlgorithm("unsupported RSA-OAEP parameters")
        pad = apadding.OAEP(
            mgf=apadding.MGF1(_HASHES[mgf_hash]()), algorithm=_HASHES[hash_name](), label=label
        )
    else:
        raise UnsupportedAlgorithm(f"key transport {name} is not supported")
    try:
        return key.decrypt(ktri["encrypted_key"].native, pad)
    except ValueError as exc:
        raise DecryptionFailed("the content-encryption key does not decrypt with our key") from exc


def envelope_kind(der: bytes) -> str:
    """``enveloped_data`` or ``authenticated_enveloped_data`` (raises MalformedMessage otherwise)."""
    try:
        kind: str = cms.ContentInfo.load(der)["content_type"].native
    except Exception as exc:
        raise MalformedMessage("the encrypted part is not valid CMS") from exc
    if kind not in {"enveloped_data", "authenticated_enveloped_data"}:
        raise MalformedMessage(f"the encrypted part is CMS {kind}, not EnvelopedData")
    return kind


def decrypt(der: bytes, identities: Sequence[Identity]) -> bytes:
    """Decrypt with whichever identity a RecipientInfo names; raise DecryptionFailed if none fits."""
    kind = envelope_kind(der)
    try:
        data = cms.ContentInfo.load(der)["content"]
        content_info = data[
            "auth_encrypted_content_info" if kind != "enveloped_data" else "encrypted_content_info"
        ]
        recipient_infos = list(data["recipient_infos"])
        alg = content_info["content_encryption_algorithm"]
        alg_name = alg["algorithm"].native
        ciphertext = content_info["encrypted_content"].native
    except Exception as exc:
        raise MalformedMessage("the EnvelopedData is malformed") from exc
    if ciphertext is None:
        raise MalformedMessage("the EnvelopedData has no encrypted content")
    cek: bytes | None = None
    last_error: Exception | None = None
    matched = False
    attempts = 0
    for info in recipient_infos:
        if info.name != "ktri" or attempts >= MAX_UNWRAP_ATTEMPTS:
            continue
        for identity in identities:
            if not _matches(info.chosen["rid"], identity.cert) or attempts >= MAX_UNWRAP_ATTEMPTS:
                continue
            matched = True
            attempts += 1
            try:
                cek = _unwrap_key(info.chosen, identity)
                break
            except DecryptionFailed as exc:
                last_error = exc
        if cek is not None:
            break
    if cek is None:
        if isinstance(last_error, UnsupportedAlgorithm):
            raise last_error
        if not matched:
            # Decided from public RecipientIdentifiers only, before any use of our keys: safe to report
            # distinctly (see NOT_FOR_US); every later failure depends on secret-keyed processing.
            raise DecryptionFailed(
                "the message is not encrypted to any of our certificates", detail=NOT_FOR_US
            )
        raise DecryptionFailed("the content-encryption key does not decrypt with our key") from last_error
    if kind == "enveloped_data":
        if alg_name not in _CBC_IN:
            # ALG-4: 3DES/RC2 are refused (JRI ENFORCE_STRONG_ENCRYPTION).
            raise UnsupportedAlgorithm(f"content cipher {alg_name} is not accepted")
        if len(cek) != _CBC_IN[alg_name]:
            raise DecryptionFailed("content-encryption key has the wrong length")
        iv = alg["parameters"].native
        decryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError as exc:
            raise DecryptionFailed("bad padding after decryption") from exc
    if alg_name not in _GCM_IN:
        raise UnsupportedAlgorithm(f"authenticated cipher {alg_name} is not accepted")
    if len(cek) != _GCM_IN[alg_name]:
        raise DecryptionFailed("content-encryption key has the wrong length")
    try:
        params = GCMParameters.load(alg["parameters"].dump())
        nonce = params["aes_nonce"].native
    except Exception as exc:
        raise MalformedMessage("malformed GCM parameters") from exc
    tag = data["mac"].native
    if not isinstance(tag, bytes) or not 12 <= len(tag) <= 16:
        # RFC 5084 §3.2: GCMParameters aes-ICVlen is 12, 13, 14, 15 or 16 octets; shorter is forgeable.
        raise UnsupportedAlgorithm("AES-GCM tag length outside 12..16 octets")
    aad = b""
    if data["auth_attrs"].native is not None:
        raw = data["auth_attrs"].dump()
        aad = b"\x31" + raw[1:]  # RFC 5083 §2.2: MAC input is the DER SET OF, not the [1] tag
    try:
        decryptor = Cipher(algorithms.AES(cek), modes.GCM(nonce, tag, min_tag_length=len(tag))).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(ciphertext) + decryptor.finalize()
    except Exception as exc:
        raise DecryptionFailed("AES-GCM authentication failed (message altered)") from exc

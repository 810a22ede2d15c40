"""CMS SignedData (RFC 5652 §5) for Direct: detached SHA-256 signatures, and their strict verification.

Pure functions over bytes and certificates. The caller hands in the *exact* bytes that were signed (the first
part of a multipart/signed, CRLF-canonical, RFC 5751 §3.1.1); nothing here re-serialises MIME (PIT-2).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import algos, cms, core
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as CryptographyUnsupported
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from direct.certs import weak_key
from direct.errors import (
    BadSignature,
    MalformedMessage,
    MissingSignature,
    UnsupportedAlgorithm,
    WeakDigest,
    WeakKey,
)
from direct.smime.identity import Identity

#: RFC 5751 §3.4.3.2 micalg spellings, by asn1crypto digest name.
MICALG = {"sha1": "sha-1", "sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512", "md5": "md5"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
#: SignerInfos verified per signature at most (a Direct message has one; each costs a public-key operation).
MAX_SIGNERS = 8
#: AS 1.3 / JRI 8: MD5 and SHA-1 are no longer allowed for signatures (ALG-3); SHA-1 only behind a switch.
WEAK_DIGESTS = {"md5", "md2", "sha1"}


def _to_asn1(cert: x509.Certificate) -> ax509.Certificate:
    return ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _from_asn1(cert: ax509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


def sign_detached(data: bytes | Sequence[bytes], signer: Identity, digest: str = "sha256") -> bytes:
    """A DER ContentInfo(SignedData) over ``data`` with no encapsulated content (detached).

    ``data`` may be given as a sequence of parts, signed as their concatenation (never joined in memory).

    MSG-10: eContentType id-data (RFC 5652 §5.2, detached: eContent absent), the signer certificate and its
    chain in ``certificates`` (ETT DTS 167), signedAttrs contentType + messageDigest + signingTime (RFC 5652
    §5.3: contentType and messageDigest MUST be present with signedAttrs; §11.1-§11.3), SignerIdentifier
    issuerAndSerialNumber (version 1). ALG-2: SHA-256 by default (RFC 5754 §2, §3.2).
    """
    if digest not in _HASHES:
        raise UnsupportedAlgorithm(f"digest {digest} is not supported")
    hasher = hashlib.new(digest)
    for part in [data] if isinstance(data, bytes | bytearray | memoryview) else data:
        hasher.update(part)
    message_digest = hasher.digest()
    signed_attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute(
                {"type": "signing_time", "values": [cms.Time({"utc_time": dt.datetime.now(dt.UTC)})]}
            ),
            cms.CMSAttribute({"type": "message_digest", "values": [message_digest]}),
        ]
    )
    # RFC 5652 §5.4: the signature covers the DER of signedAttrs as an explicit SET OF.
    to_sign = signed_attrs.dump(force=True)
    key = signer.key
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(to_sign, padding.PKCS1v15(), _HASHES[digest]())
        sig_alg = {"algorithm": "rsassa_pkcs1v15"}
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(to_sign, ec.ECDSA(_HASHES[digest]()))
        sig_alg = {"algorithm": f"{digest}_ecdsa"}
    else:  # pragma: no cover - Identity.load refuses other keys
        raise UnsupportedAlgorithm("unsupported signing key")
    leaf = _to_asn1(signer.cert)
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": leaf.issuer, "serial_number": leaf.serial_number}
                    )
                }
            ),
            "digest_algorithm": {"algorithm": digest},
            "signed_attrs": signed_attrs,
            "signature_algorithm": sig_alg,
            "signature": signature,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": digest}],
            "encap_content_info": {"content_type": "data"},
            "certificates": [leaf, *(_to_asn1(c) for c in signer.chain)],
            "signer_infos": [signer_info],
        }
    )
    der: bytes = cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
    return der


@dataclass
class SignatureReport:
    """What a valid signature told us: who signed, with which digest, and the certificates they sent."""

    signer: x509.Certificate
    certificates: list[x509.Certificate]
    digest: str
    signing_time: dt.datetime | None


def load_signed_data(der: bytes) -> cms.SignedData:
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise MalformedMessage("the signature part is not CMS SignedData")
        signed = info["content"]
        len(signed["signer_infos"])  # parse the parts we rely on now, so malformed DER fails here
    except MalformedMessage:
        raise
    except Exception as exc:
        raise MalformedMessage("the signature part is not valid CMS") from exc
    return signed


def carried_certificates(signed: cms.SignedData) -> list[ax509.Certificate]:
    """The X.509 certificates in a SignedData (the optional field may be absent)."""
    field = signed["certificates"]
    if isinstance(field, core.Void):
        return []
    return [c.chosen for c in field if c.name == "certificate"]


def signature_digest(der: bytes) -> str | None:
    """The digest algorithm name of the first SignerInfo (for reporting), or None."""
    try:
        infos = load_signed_data(der)["signer_infos"]
        return infos[0]["digest_algorithm"]["algorithm"].native if len(infos) else None
    except MalformedMessage:
        return None


def _find_signer(sid: cms.SignerIdentifier, certs: list[ax509.Certificate]) -> ax509.Certificate | None:
    if sid.name == "issuer_and_serial_number":
        want = sid.chosen
        for cert in certs:
            if cert.issuer == want["issuer"] and cert.serial_number == want["serial_number"].native:
                return cert
    elif sid.name == "subject_key_identifier":
        for cert in certs:
            if cert.key_identifier == sid.chosen.native:
                return cert
    return None


def _check_pss(
    params: algos.RSASSAPSSParams, digest: str, accept_sha1: bool
) -> tuple[hashes.HashAlgorithm, int]:
    """The PSS hash and salt length of RSASSA-PSS ``params`` (RFC 4055 §3.1) once they pass our policy.

    ALG-3 (AS 1.3, ANSI/DS 2019-01-100-2021: SHA-1 is disallowed for signatures; JRI
    ``isAllowedDigestAlgorithm``): SHA-1 as the PSS hash or the MGF1 hash is as weak as a SHA-1 digest —
    including the RFC 4055 defaults, which are SHA-1 when the parameters are left out — and is refused
    unless ``accept_sha1``. RFC 4056 §3 / RFC 5754: the PSS hash and the MGF1 hash must be the SignerInfo's
    digestAlgorithm (a signature over a SHA-256 digest is not made weaker, or different, by its padding).
    """
    pss_name = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    if mgf["algorithm"].native != "mgf1":
        raise UnsupportedAlgorithm("RSASSA-PSS mask generation other than MGF1 is not supported")
    mgf_name = mgf["parameters"]["algorithm"].native
    for name in (pss_name, mgf_name):
        if name in WEAK_DIGESTS and not (name == "sha1" and accept_sha1):
            raise WeakDigest(f"the RSASSA-PSS signature uses {name}, which is no longer allowed")
    if pss_name != digest or mgf_name != digest:
        raise UnsupportedAlgorithm(
            f"RSASSA-PSS hash {pss_name} / MGF1 {mgf_name} does not match the digest algorithm {digest}"
        )
    if params["trailer_field"].native not in ("trailer_field_bc", 1):
        raise UnsupportedAlgorithm("RSASSA-PSS trailer field other than 0xBC is not supported")
    salt_length: int = params["salt_length"].native
    return _HASHES[digest](), salt_length


def _verify_raw(
    cert: x509.Certificate,
    signature: bytes,
    data: bytes,
    sig_alg: str,
    digest: str,
    sig_params: object,
    accept_sha1: bool = False,
) -> None:
    """Raise InvalidSignature unless ``signature`` over ``data`` checks out (ALG-10: not just 'no error')."""
    public = cert.public_key()
    hash_alg = _HASHES[digest]()
    if isinstance(public, rsa.RSAPublicKey):
        if sig_alg == "rsassa_pss":
            pss_hash, salt = _check_pss(sig_params, digest, accept_sha1)
            public.verify(signature, data, padding.PSS(padding.MGF1(pss_hash), salt), pss_hash)
        elif sig_alg in {"rsassa_pkcs1v15", f"{digest}_rsa"}:
            public.verify(signature, data, padding.PKCS1v15(), hash_alg)
        else:
            raise UnsupportedAlgorithm(f"signature algorithm {sig_alg} is not supported")
    elif isinstance(public, ec.EllipticCurvePublicKey):
        if not sig_alg.endswith("ecdsa"):
            raise UnsupportedAlgorithm(f"signature algorithm {sig_alg} does not fit an EC key")
        public.verify(signature, data, ec.ECDSA(hash_alg))
    else:
        raise UnsupportedAlgorithm("signer key type is not supported")


#: What asn1crypto / cryptography raise on malformed DER deep inside a structure (parsed lazily), including
#: cryptography's own exceptions for a (mutated) certificate: an OID it cannot name, a bad version.
PARSE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    UnicodeError,
    CryptographyUnsupported,
    x509.InvalidVersion,  # not a ValueError: a carried certificate with version 99 (found by fuzzing)
)


def verify_detached(data: bytes | None, der: bytes, *, accept_sha1: bool = False) -> SignatureReport:
    """Verify every SignerInfo of ``der`` over ``data`` (detached) or over its own eContent.

    Raises :class:`WeakDigest` (MD5 always, SHA-1 unless ``accept_sha1`` — as the digest or inside an
    RSASSA-PSS signature), :class:`WeakKey` (an RSA signer under 2048 bits), :class:`UnsupportedAlgorithm`
    (a PSS/MGF1 hash other than the digest), :class:`BadSignature` (digest or signature mismatch),
    :class:`MissingSignature` (no SignerInfo) or :class:`MalformedMessage`.
    """
    try:
        return _verify(data, der, accept_sha1)
    except PARSE_ERRORS as exc:
        raise MalformedMessage("the signature part is not valid CMS") from exc


def _verify(data: bytes | None, der: bytes, accept_sha1: bool) -> SignatureReport:
    signed = load_signed_data(der)
    if data is None:
        econtent = signed["encap_content_info"]["content"]
        if econtent.native is None:
            raise MalformedMessage("detached signature without content")
        data = econtent.native
    certs = carried_certificates(signed)
    if not len(signed["signer_infos"]):
        raise MissingSignature("the SignedData has no signer")
    if len(signed["signer_infos"]) > MAX_SIGNERS:
        raise MalformedMessage(f"the SignedData has more than {MAX_SIGNERS} signers")
    report: SignatureReport | None = None
    for info in signed["signer_infos"]:
        digest = info["digest_algorithm"]["algorithm"].native
        if digest in WEAK_DIGESTS and not (digest == "sha1" and accept_sha1):
            raise WeakDigest(f"signature uses {digest}, which is no longer allowed")
        if digest not in _HASHES:
            raise UnsupportedAlgorithm(f"digest {digest} is not supported")
        signer_asn1 = _find_signer(info["sid"], certs)
        if signer_asn1 is None:
            raise BadSignature("the signer's certificate is not in the message")
        signer = _from_asn1(signer_asn1)
        # ALG-8 (AS 1.3 key sizes; JRI isAllowedCertKey skips such certificates for verification; ETT 1.3
        # CERT_LESS_THAN_2048_BITS MUST be rejected): an RSA signer under 2048 bits is refused, weak_key.
        if (weak := weak_key(signer)) is not None:
            raise WeakKey(f"the signer's certificate is refused: {weak}")
        sig_alg = info["signature_algorithm"]["algorithm"].native
        sig_params = info["signature_algorithm"]["parameters"]
        signature = info["signature"].native
        signing_time = None
        attrs = info["signed_attrs"]
        if attrs.native is not None and len(attrs):
            by_type = {a["type"].native: a["values"] for a in attrs}
            # RFC 5652 §5.3: with signedAttrs, contentType and messageDigest MUST be present; §5.6: the
            # messageDigest value MUST equal the digest of the content.
            if "message_digest" not in by_type or "content_type" not in by_type:
                raise BadSignature("signedAttrs lack messageDigest or contentType")
            if by_type["message_digest"][0].native != hashlib.new(digest, data).digest():
                raise BadSignature("the content does not match the signed digest (message altered)")
            if "signing_time" in by_type:
                signing_time = by_type["signing_time"][0].native
            # RFC 5652 §5.4: verify over the received encoding, retagged from [0] IMPLICIT to SET.
            raw_attrs = attrs.dump()
            to_verify = b"\x31" + raw_attrs[1:]
        else:
            to_verify = data
        try:
            _verify_raw(signer, signature, to_verify, sig_alg, digest, sig_params, accept_sha1)
        except InvalidSignature as exc:
            raise BadSignature("the signature does not verify (message altered or wrong key)") from exc
        if report is None:
            report = SignatureReport(signer, [_from_asn1(c) for c in certs], digest, signing_time)
    assert report is not None
    return report


def der_signature_algorithms(der: bytes) -> list[str]:
    """Digest names of every SignerInfo (used by the micalg consistency check, PIT-5)."""
    return [i["digest_algorithm"]["algorithm"].native for i in load_signed_data(der)["signer_infos"]]


__all__ = [
    "MICALG",
    "SignatureReport",
    "der_signature_algorithms",
    "load_signed_data",
    "sign_detached",
    "signature_digest",
    "verify_detached",
]

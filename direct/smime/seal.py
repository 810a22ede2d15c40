"""Seal (sign, then encrypt) and unseal (decrypt, verify, check trust and routing) a Direct message.

``seal`` implements the outbound structure of AS 1.2/1.3 §2 with RFC 5751 wrapping (MSG-3): the inner
RFC 5322 message as ``message/rfc822`` inside ``multipart/signed`` inside ``application/pkcs7-mime``.

``unseal`` accepts what conformant peers send (wrapped or not, CBC or GCM, PKCS#1 v1.5 or OAEP) and
reports every failure with a distinct code from :mod:`direct.errors`. It returns a result instead of
raising, so callers (CLI JSON, MDN logic) can report partial facts, e.g. who signed a message whose
trust check failed.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from direct.certs import bound_to
from direct.errors import (
    DecryptionFailed,
    DirectError,
    MalformedMessage,
    MissingSignature,
    NotBound,
    NotEncrypted,
    RoutingTamper,
    UntrustedSigner,
)
from direct.message import (
    DNO_HEADER,
    WIRE,
    Attachment,
    addresses,
    attachments_of,
    canonical_crlf,
    parse_message,
    to_bytes,
)
from direct.smime import envelope, mime, signing
from direct.smime.chain import ChainCheck, check_chain
from direct.smime.identity import Identity

#: MSG-4: headers copied to the unencrypted outer message; Subject is replaced by a neutral one (no PHI).
OUTER_HEADERS = (
    "From",
    "To",
    "Cc",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    DNO_HEADER,
    "Disposition-Notification-To",
)
NEUTRAL_SUBJECT = "Direct message"


@dataclass
class SealOptions:
    """Algorithm choices for outbound messages. Defaults follow ALG-2/4/5 and PIT-8."""

    cipher: str = "aes256-cbc"
    key_transport: str = "rsa"
    digest: str = "sha256"
    #: Also encrypt to our own certificate so the sent copy stays readable (issue 3).
    encrypt_to_self: bool = True
    outer_subject: str = NEUTRAL_SUBJECT


def _fold(name: str, value: object) -> bytes:
    return WIRE.fold_binary(name, value)  # type: ignore[arg-type]  # header values: str or email Header


def _can_encrypt(cert: x509.Certificate) -> bool:
    try:
        envelope.check_recipient_cert(cert)
    except DirectError:
        return False
    return True


def seal(
    inner: EmailMessage | bytes,
    signer: Identity,
    recipient_certs: Sequence[x509.Certificate],
    options: SealOptions | None = None,
) -> bytes:
    """The complete Direct message (outer headers + S/MIME body) as CRLF bytes, ready for SMTP DATA.

    ALG-1 (AS 1.2 §2): every message is signed, then encrypted (RFC 5751 §3.6 multiple operations: sign the
    wrapped message, encrypt the signed entity); MSG-3: RFC 5751 §3.1 wrapping as message/rfc822.
    """
    options = options or SealOptions()
    if isinstance(inner, bytes):
        inner_bytes = canonical_crlf(inner)
        # Only the headers are needed (for the outer copy): parsing a multi-megabyte body would be wasted.
        inner_msg: Message = parse_message(mime.header_block(inner_bytes) + b"\r\n")
    else:
        inner_bytes, inner_msg = to_bytes(inner), inner
    # RFC 2046 §5.2.1: message/rfc822 allows only 7bit/8bit/binary; build_message keeps it 7bit.
    # The payload is held once (inner_bytes): signing hashes the parts, encryption reads them in chunks and
    # the base64 of the ciphertext is written into the one output buffer, sized up front.
    wrapped = [WRAPPED_HEADER, inner_bytes]
    signature = signing.sign_detached(wrapped, signer, options.digest)
    signed_parts = mime.build_signed_parts(wrapped, signature, options.digest)
    recipients = list(recipient_certs)
    if options.encrypt_to_self and _can_encrypt(signer.cert):
        recipients.append(signer.cert)
    stream = envelope.encrypt_stream(
        signed_parts, recipients, cipher=options.cipher, key_transport=options.key_transport
    )
    head = b""
    for name in OUTER_HEADERS:
        for value in inner_msg.get_all(name, []):
            head += _fold(name, value)
    head += _fold("Subject", options.outer_subject)
    head += b"MIME-Version: 1.0\r\n"
    for name, value in mime.enveloped_headers(authenticated=options.cipher.endswith("gcm")):
        head += f"{name}: {value}\r\n".encode("ascii")
    head += b"\r\n"
    return _write_exact(head, stream)


#: The header of the message/rfc822 part wrapping the inner message (RFC 5751 §3.1, MSG-3).
WRAPPED_HEADER = b"Content-Type: message/rfc822\r\n\r\n"


def _write_exact(head: bytes, stream: envelope.EncryptedStream) -> bytes:
    """``head`` + base64 lines of ``stream``, written into one buffer allocated at its final size: the
    result is that buffer (``BytesIO.getvalue`` hands it over without a copy), no joined intermediate."""
    size = len(head) + mime.base64_lines_length(stream.length)
    out = io.BytesIO()
    out.seek(size - 1)
    out.write(b"\0")  # one allocation of the final size
    out.seek(0)
    out.write(head)
    mime.write_base64_lines(stream, out.write)
    if out.tell() != size:  # pragma: no cover - a length computation bug, never silently truncated
        raise AssertionError(f"sealed message is {out.tell()} bytes, expected {size}")
    return out.getvalue()


# --- unseal ---------------------------------------------------------------------------------------------
ChainValidator = Callable[
    [x509.Certificate, Sequence[x509.Certificate], Sequence[x509.Certificate]], ChainCheck
]


@dataclass
class UnsealResult:
    """Everything learned from one inbound message, also when it was rejected (``error`` set)."""

    decrypted: bool = False
    signature: str = "missing"  # "valid" | "invalid" | "missing"
    digest: str | None = None
    signer: x509.Certificate | None = None
    signer_trusted: bool = False
    wrapped: bool = False
    from_addr: str | None = None
    to_addrs: list[str] = field(default_factory=list)
    message_id: str | None = None
    message: EmailMessage | None = None
    attachments: list[Attachment] = field(default_factory=list)
    error: DirectError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.decrypted and self.signature == "valid" and self.signer_trusted

    @property
    def is_notification(self) -> bool:
        """An MDN or DSN (multipart/report): never answered with an MDN (MDN-1)."""
        return self.message is not None and self.message.get_content_type() == "multipart/report"

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error

    def to_json(self) -> dict[str, Any]:
        """The fixed ``bbdirect unseal --json`` shape (issue 3, CLI contract)."""
        return {
            "ok": self.ok,
            "decrypted": self.decrypted,
            "signature": self.signature,
            "digest": self.digest,
            "signer": None
            if self.signer is None
            else {"subject": self.signer.subject.rfc4514_string(), "trusted": self.signer_trusted},
            "wrapped": self.wrapped,
            "from": self.from_addr,
            "to": list(self.to_addrs),
            "attachments": [
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "sha256": hashlib.sha256(a.data).hexdigest(),
                }
                for a in self.attachments
            ],
            "error": None if self.error is None else {"code": self.error.code, "message": self.error.message},
        }


def _bound(cert: x509.Certificate, address: str) -> bool:
    """CERT-1: rfc822Name == address or dNSName == its domain (subjectAltName only)."""
    try:
        return bound_to(cert, address) is not None
    except DirectError:
        return False


def _smime_type(msg: Message) -> str:
    return (msg.get_param("smime-type", "", header="content-type") or "").lower()  # type: ignore[union-attr]  # an RFC 2231 tuple only if encoded; a token is not


def unseal(
    raw: bytes,
    identities: Sequence[Identity],
    anchors: Sequence[x509.Certificate],
    *,
    mail_from: str | None = None,
    rcpt_tos: Sequence[str] | None = None,
    accept_sha1: bool = False,
    chain_validator: ChainValidator | None = None,
) -> UnsealResult:
    """Decrypt, verify and check one inbound message. Never raises for message faults: see ``error``.

    ``mail_from``/``rcpt_tos`` are the SMTP envelope; when given, the routing-tamper rule applies (MSG-5):
    MAIL FROM equals From/Sender (a null reverse-path only for notifications) and every RCPT TO is in To/Cc.
    """
    result = UnsealResult()
    try:
        _unseal(
            canonical_crlf(raw),
            identities,
            anchors,
            mail_from,
            rcpt_tos,
            accept_sha1,
            chain_validator or check_chain,
            result,
        )
    except DirectError as exc:
        result.error = exc
    except signing.PARSE_ERRORS as exc:
        # Malformed input deep in MIME/CMS/X.509 parsing: a message fault, never a crash of the endpoint.
        result.error = MalformedMessage(f"the message is malformed ({type(exc).__name__})")
    if result.error is not None:
        result.error.secret_dependent = _secret_dependent(result)
    return result


def _secret_dependent(result: UnsealResult) -> bool:
    """Was ``result.error`` decided by processing with our private key, before a signature verified?

    Such verdicts must not reach a remote sender distinctly: "bad CBC padding" (decrypt_failed) versus
    "decrypted but malformed/unsigned" is a padding oracle that decrypts a captured message sent to us byte
    by byte (Vaudenay 2002; the EFAIL family for S/MIME), and RSA PKCS#1 v1.5 unwrapping likewise
    (Bleichenbacher). Public facts (not encrypted at all, no RecipientInfo for our certificates) and the
    verdicts after a valid signature (untrusted signer, not bound, routing tamper) are not secret-dependent.
    :class:`direct.transport.smtp_server.ReceivingEndpoint` words its reply from this flag.
    """
    error = result.error
    if error is None or result.signature == "valid" or isinstance(error, NotEncrypted):
        return False
    return not (isinstance(error, DecryptionFailed) and error.detail == envelope.NOT_FOR_US)


def _unseal(
    raw: bytes,
    identities: Sequence[Identity],
    anchors: Sequence[x509.Certificate],
    mail_from: str | None,
    rcpt_tos: Sequence[str] | None,
    accept_sha1: bool,
    validate: ChainValidator,
    result: UnsealResult,
) -> None:
    outer_headers, _ = mime.split_headers(raw)
    outer = parse_message(outer_headers + b"\r\n")  # headers only: the body is base64 CMS
    result.from_addr = next(iter(addresses(outer, "From")), None)
    result.to_addrs = addresses(outer, "To", "Cc")
    result.message_id = outer.get("Message-ID")
    ctype = outer.get_content_type()
    if ctype not in {"application/pkcs7-mime", "application/x-pkcs7-mime"} or _smime_type(outer) not in {
        "",
        "enveloped-data",
        "authenveloped-data",
    }:
        # AS 1.2 §2 / ALG-1: every Direct message is encrypted.
        raise NotEncrypted("not an encrypted S/MIME message (application/pkcs7-mime enveloped-data)")
    der = mime.decode_entity_body(raw)
    entity = canonical_crlf(envelope.decrypt(der, identities))
    result.decrypted = True

    header_block, _ = mime.split_headers(entity)
    entity_msg = parse_message(header_block + b"\r\n")
    content: bytes
    report: signing.SignatureReport | None = None
    if entity_msg.get_content_type() == "multipart/signed":
        parts = mime.split_signed(entity)
        content = parts.content
        report = _verify(content, mime.decode_entity_body(parts.signature_entity), accept_sha1, result)
    elif (
        entity_msg.get_content_type() in {"application/pkcs7-mime", "application/x-pkcs7-mime"}
        and _smime_type(entity_msg) == "signed-data"
    ):
        sig_der = mime.decode_entity_body(entity)
        report = _verify(None, sig_der, accept_sha1, result)  # opaque: the content is inside the CMS
        content = canonical_crlf(signing.load_signed_data(sig_der)["encap_content_info"]["content"].native)
    else:
        content = entity
    if report is not None:
        result.signature = "valid"
        result.signer = report.signer
        result.digest = report.digest

    part_headers, part_body = mime.split_headers(content)
    part_msg = parse_message(part_headers + b"\r\n")
    if part_msg.get_content_type() == "message/rfc822":
        result.wrapped = True
        message = parse_message(part_body)
    else:
        # Unwrapped (PIT-15): the signed entity is the body; the message headers are the outer ones.
        message = parse_message(content)
        for name in (
            "From",
            "To",
            "Cc",
            "Date",
            "Message-ID",
            "Subject",
            DNO_HEADER,
            "Disposition-Notification-To",
        ):
            for value in outer.get_all(name, []):
                if name not in message:
                    message[name] = value
    result.message = message
    result.from_addr = next(iter(addresses(message, "From")), result.from_addr)
    result.to_addrs = addresses(message, "To", "Cc") or result.to_addrs
    result.message_id = message.get("Message-ID") or result.message_id
    result.attachments = attachments_of(message)

    if report is None:
        raise MissingSignature("the message is not signed")
    public = report.signer.public_key()
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < envelope.MIN_RSA_BITS:
        # ALG-8 (JRI isAllowedCertKey, ETT CERT_LESS_THAN_2048_BITS): such signers are not acceptable.
        raise UntrustedSigner(f"the signer's RSA key has {public.key_size} bits (< 2048)", detail="weak_key")
    check = validate(report.signer, report.certificates, anchors)
    result.signer_trusted = check.trusted
    if not check.trusted:
        raise UntrustedSigner(f"signer not trusted: {check.reason}", detail=check.code or None)
    if not result.from_addr:
        # RFC 5322 §3.6: From is required; without it the signer binding (CERT-1) could not be checked.
        raise MalformedMessage("the message has no From address")
    if not _bound(report.signer, result.from_addr):
        result.signer_trusted = False
        raise NotBound("the signer certificate is not bound to the From address or its domain")
    _check_routing(message, mail_from, rcpt_tos, result.is_notification)


def _verify(
    content: bytes | None, sig_der: bytes, accept_sha1: bool, result: UnsealResult
) -> signing.SignatureReport:
    """Verify a detached (``content`` given) or opaque signature; on failure record ``invalid`` and, when
    it can be identified, the signer, then re-raise (the report names who signed a rejected message)."""
    result.digest = signing.signature_digest(sig_der)
    try:
        return signing.verify_detached(content, sig_der, accept_sha1=accept_sha1)
    except DirectError:
        result.signature = "invalid"
        _peek_signer(sig_der, result)
        raise


def _peek_signer(sig_der: bytes, result: UnsealResult) -> None:
    """Best effort: name the signer of a signature that failed, for the report."""
    try:
        signed = signing.load_signed_data(sig_der)
        certs = signing.carried_certificates(signed)
        signer = signing._find_signer(signed["signer_infos"][0]["sid"], certs)
        if signer is not None:
            result.signer = x509.load_der_x509_certificate(signer.dump())
    except Exception:  # noqa: S110 - reporting only
        pass


def _check_routing(
    message: Message, mail_from: str | None, rcpt_tos: Sequence[str] | None, notification: bool
) -> None:
    """MSG-5 / PIT-16 (JRI enforceTamperPolicy): the envelope must match the signed headers."""
    if mail_from is not None:
        sender = mail_from.strip().strip("<>").lower()
        if sender == "":
            if not notification:  # DN-7: null reverse-path only for MDNs/DSNs
                raise RoutingTamper("null MAIL FROM on a message that is not a notification")
        elif sender not in {a.lower() for a in addresses(message, "From", "Sender")}:
            raise RoutingTamper("MAIL FROM does not match the From header")
    if rcpt_tos is not None:
        allowed = {a.lower() for a in addresses(message, "To", "Cc")}
        for rcpt in rcpt_tos:
            if rcpt.strip().strip("<>").lower() not in allowed:
                raise RoutingTamper("an envelope recipient is not in To or Cc")


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()

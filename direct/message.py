"""The wrapped RFC 5322 message a Direct transmission carries, and XDM packages (zip over e-mail).

``build_message`` makes the *inner* message (RFC 5751 §3.1 "wrapped"): real From/To/Date/Message-ID/Subject,
the delivery-notification request (DNIG), a quoted-printable text body and base64 attachments, so every line
is 7bit and survives relays unchanged (MSG-8, PIT-4). :mod:`direct.smime` signs and encrypts it.

XDM (IHE ITI-32, "XDR and XDM for Direct Messaging"): ``build_xdm`` writes README.TXT, INDEX.HTM and
IHE_XDM/SUBSET01/{METADATA.XML, documents}; ``unpack_xdm`` reads a received zip defensively (XDM-6).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import mimetypes
import posixpath
import re
import socket
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import policy as email_policy
from email.generator import BytesGenerator, Generator
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid
from xml.sax.saxutils import escape, quoteattr

from direct.address import DirectAddress
from direct.errors import AddressError, MalformedMessage
from direct.text import has_control

#: DNIG: request processed + dispatched MDNs (exact string ETT MU2SenderTests checks, DN-1).
DNO_HEADER = "Disposition-Notification-Options"
DNO_VALUE = "X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true"
#: SMTP policy: CRLF line endings, 78-column folding; signatures are computed over this form (PIT-1).
SMTP = email_policy.SMTP
#: Serialisation policy: SMTP, but headers fold only beyond 120 columns so single-token values such as the
#: Disposition-Notification-Options request stay on one line for naive parsers (PIT-18). Bodies are encoded
#: at ``set_content`` time under :data:`SMTP` (76-column QP/base64), so this affects headers only.
WIRE = SMTP.clone(max_line_length=120)
#: IHE XDM / ETT DTS 124: a Direct message carrying an XDM zip has this in its Subject.
XDM_SUBJECT = "XDM/1.0/DDM"


@dataclass(frozen=True)
class Attachment:
    """One file carried by a message. ``content_type`` is a bare type/subtype."""

    filename: str
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @classmethod
    def from_file(cls, path: str, content_type: str | None = None) -> Attachment:
        with open(path, "rb") as fh:
            data = fh.read()
        return cls(posixpath.basename(path.replace("\\", "/")), content_type or guess_type(path), data)


def guess_type(filename: str) -> str:
    lower = filename.lower()
    if lower.endswith(".xml"):
        return "application/xml"  # MSG-12: the C-CDA travels as application/xml
    if lower.endswith(".zip"):
        return "application/zip"
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _check_header_text(value: str, what: str) -> str:
    """Header injection guard for user-supplied header text (subject, file names, extra headers).

    Non-ASCII letters are fine (the email package writes RFC 2047 encoded-words); control characters are
    refused with a coded error rather than left to the email package (bare ValueError) or sent raw (NUL).
    """
    if has_control(value):
        raise MalformedMessage(f"{what} must be one line of printable text")
    return value


#: RFC 5322 §3.6.8 field-name: printable US-ASCII except ":".
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")


def _check_header_name(name: str, msg: Message) -> str:
    """Extra headers may not be malformed, Bcc (MSG-5: Direct never uses Bcc), MIME structure, or a
    second copy of a header build_message already set (From, To, Message-ID...)."""
    lower = name.lower()
    if not _FIELD_NAME.match(name) or lower == "bcc" or lower.startswith("content-") or name in msg:
        raise MalformedMessage("extra header names must be new, well-formed fields (not Bcc or Content-*)")
    return name


def _check_address(addr: str) -> str:
    """One address validator for the whole agent: :meth:`DirectAddress.parse` (RFC 5321 Mailbox; refuses
    CR/LF and controls, display names, lists, address literals, dotless domains)."""
    return str(DirectAddress.parse(addr))


def new_message_id(domain: str | None = None) -> str:
    """A globally unique ``<left@right>`` Message-ID without spaces (MSG-2; RFC 5322 §3.6.4 msg-id)."""
    return make_msgid(idstring=uuid.uuid4().hex[:12], domain=domain or socket.getfqdn() or "localhost")


def build_message(
    from_addr: str,
    to_addrs: Sequence[str],
    subject: str,
    text: str,
    attachments: Sequence[Attachment] = (),
    *,
    cc_addrs: Sequence[str] = (),
    message_id: str | None = None,
    date: dt.datetime | None = None,
    request_delivery_notification: bool = True,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> EmailMessage:
    """The wrapped inner message. Recipients go in To/Cc only: Direct never uses Bcc (MSG-5, PIT-16)."""
    sender = _check_address(from_addr)
    to = [_check_address(a) for a in to_addrs]
    cc = [_check_address(a) for a in cc_addrs]
    if not to:
        raise AddressError("a message needs at least one To address")
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Date"] = format_datetime(date or dt.datetime.now(dt.UTC))
    msg["Message-ID"] = message_id or new_message_id(sender.rsplit("@", 1)[1])
    msg["Subject"] = _check_header_text(subject, "subject")
    msg["MIME-Version"] = "1.0"
    if request_delivery_notification:
        msg[DNO_HEADER] = DNO_VALUE
        msg["Disposition-Notification-To"] = sender
    for name, value in extra_headers:
        msg[_check_header_name(name, msg)] = _check_header_text(value, "extra header")
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    for att in attachments:
        maintype, _, subtype = att.content_type.partition("/")
        msg.add_attachment(
            att.data,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=_check_header_text(att.filename, "filename"),
            cte="base64",
        )
    return msg


class _Generator(BytesGenerator):
    """``email``'s BytesGenerator with its line-ending pass done once per body instead of once per line.

    The stock ``_write_lines`` splits a body on every line ending and writes each line and a separator
    (two writes and two encodes per 76-character line of a base64 attachment); substituting the line
    endings in one pass produces the same bytes (``NLCRE.split`` + join == ``NLCRE.sub``), and a body that
    already uses the output line ending is written as is.
    """

    def _write_lines(self, lines: str) -> None:
        if not lines:
            return
        nl: str = self._NL  # type: ignore[attr-defined]  # Generator._NL: private, not in typeshed
        if "\r" not in lines:
            # Bodies set through set_content have "\n" line ends only. Converted and encoded a slice at a
            # time, so a large attachment is not held three times over (text, converted text, bytes).
            for start in range(0, len(lines), _WRITE_CHUNK):
                chunk = lines[start : start + _WRITE_CHUNK]
                self.write(chunk if nl == "\n" else chunk.replace("\n", nl))
            return
        crlf = lines.count("\r\n")
        if nl == "\r\n" and lines.count("\n") == crlf and lines.count("\r") == crlf:
            self.write(lines)
        else:
            self.write(_NLCRE.sub(nl.replace("\\", "\\\\"), lines))


_WRITE_CHUNK = 1 << 20
_NLCRE = re.compile(r"\r\n|\r|\n")


def to_bytes(msg: Message) -> bytes:
    """CRLF-canonical bytes of a message (what gets signed, PIT-1): ``msg.as_bytes(policy=WIRE)``, faster.

    A multipart without a boundary gets one here, drawn as the email package draws it; the package itself
    would first join all subpart texts into one more copy of the payload to search it for the boundary.
    Instead the finished output is checked: each new boundary must occur exactly once per delimiter line,
    else new ones are drawn (and after a few tries the email package chooses as before).
    """
    fresh = [
        part
        for part in msg.walk()
        if part.get_content_maintype() == "multipart" and part.get_boundary() is None
    ]
    for _attempt in range(_BOUNDARY_TRIES):
        for part in fresh:
            part.set_boundary(Generator._make_boundary())  # type: ignore[attr-defined]  # private, not in typeshed
        data = _flatten(msg)
        if all(_boundary_unique(data, part) for part in fresh):
            return canonical_crlf(data)
    for part in fresh:  # pragma: no cover - astronomically unlikely with random boundaries
        part.del_param("boundary")
    return canonical_crlf(_flatten(msg))


_BOUNDARY_TRIES = 5


def _flatten(msg: Message) -> bytes:
    out = io.BytesIO()
    _Generator(out, mangle_from_=False, policy=WIRE).flatten(msg)
    return out.getvalue()


def _boundary_unique(data: bytes, part: Message) -> bool:
    """Does ``--boundary`` occur only as the delimiters the generator wrote (one per subpart, at least
    one, and the close delimiter)?"""
    boundary = part.get_boundary()
    subparts = part.get_payload()
    expected = max(1, len(subparts) if isinstance(subparts, list) else 0) + 1
    return boundary is not None and data.count(b"--" + boundary.encode("ascii")) == expected


def canonical_crlf(data: bytes) -> bytes:
    """Every line ending as CRLF (bare LF and bare CR converted), RFC 5751 §3.1.1."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") == crlf and data.count(b"\r") == crlf:
        return data  # already canonical: the common case, and cheap for multi-megabyte messages
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def parse_message(data: bytes) -> EmailMessage:
    return BytesParser(policy=email_policy.default).parsebytes(data)


def addresses(msg: Message, *headers: str) -> list[str]:
    """Bare addr-specs from the named headers, in order."""
    values: list[str] = []
    for header in headers:
        values.extend(str(v) for v in msg.get_all(header, []))
    return [addr for _name, addr in getaddresses(values) if addr]


def text_body(msg: EmailMessage) -> str | None:
    body = (
        msg.get_body(preferencelist=("plain",))
        if msg.is_multipart() or msg.get_content_type() == "text/plain"
        else None
    )
    return body.get_content() if body is not None else None


def attachments_of(msg: Message) -> list[Attachment]:
    """Every leaf part that is a file: anything with a filename, or a non-text part. The text body is not."""
    out: list[Attachment] = []
    body_seen = False
    for part in msg.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        ctype = part.get_content_type()
        if (
            not filename
            and ctype.startswith("text/")
            and not body_seen
            and part.get_content_disposition() != "attachment"
        ):
            body_seen = True
            continue
        if not filename and ctype == "message/rfc822":
            continue
        payload = part.get_payload(decode=True)  # bytes (or None) for a leaf part
        name = safe_filename(filename or f"part{len(out) + 1}{mimetypes.guess_extension(ctype) or '.bin'}")
        out.append(Attachment(name, ctype, payload if isinstance(payload, bytes) else b""))
    return out


def safe_filename(name: str) -> str:
    """A file name with no directory part and no dangerous characters (for --extract and inboxes)."""
    base = posixpath.basename(name.replace("\\", "/")).strip().lstrip(".")
    cleaned = "".join(c if c.isalnum() or c in "-_.+@ " else "_" for c in base)
    return cleaned[:200] or "attachment"


# --- XDM ------------------------------------------------------------------------------------------------
_XDM_DIR = "IHE_XDM/SUBSET01/"
#: XDM-6 limits: a received package may not explode into a zip bomb.
MAX_XDM_ENTRIES = 1000
MAX_XDM_BYTES = 200 * 2**20


def _slot(name: str, value: str) -> str:
    values = f"<rim:ValueList><rim:Value>{escape(value)}</rim:Value></rim:ValueList>"
    return f'<rim:Slot name="{name}">{values}</rim:Slot>'


def _xdm_metadata(docs: Sequence[Attachment], sender: str, recipient: str, now: dt.datetime) -> str:
    """ebRIM 3.0 SubmitObjectsRequest: one ExtrinsicObject per document, one submission set (XDM-2)."""
    ts = now.strftime("%Y%m%d%H%M%S")
    set_id = f"urn:uuid:{uuid.uuid4()}"
    objects = []
    assocs = []
    for doc in docs:
        doc_id = f"urn:uuid:{uuid.uuid4()}"
        sha1 = hashlib.sha1(doc.data).hexdigest()  # noqa: S324 - the XDS "hash" slot is SHA-1 by definition
        objects.append(
            f"<rim:ExtrinsicObject id={quoteattr(doc_id)} mimeType={quoteattr(doc.content_type)} "
            'objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">'
            + _slot("URI", doc.filename)
            + _slot("hash", sha1)
            + _slot("size", str(len(doc.data)))
            + _slot("creationTime", ts)
            + "</rim:ExtrinsicObject>"
        )
        assocs.append(
            f'<rim:Association id="urn:uuid:{uuid.uuid4()}" '
            'associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember" '
            f"sourceObject={quoteattr(set_id)} targetObject={quoteattr(doc_id)}>"
            + _slot("SubmissionSetStatus", "Original")
            + "</rim:Association>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" '
        'xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><rim:RegistryObjectList>'
        + "".join(objects)
        + f"<rim:RegistryPackage id={quoteattr(set_id)}>"
        + _slot("submissionTime", ts)
        + _slot("intendedRecipient", "^^Internet^" + recipient)
        + '<rim:Classification classificationScheme="urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d" '
        f'classifiedObject={quoteattr(set_id)} nodeRepresentation="">'
        + _slot("authorTelecommunication", "^^Internet^" + sender)
        + "</rim:Classification>"
        + f"<rim:Classification classifiedObject={quoteattr(set_id)} "
        'classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"/>'
        "</rim:RegistryPackage>" + "".join(assocs) + "</rim:RegistryObjectList></lcm:SubmitObjectsRequest>\n"
    )


def build_xdm(
    documents: Sequence[Attachment], sender: str, recipient: str, now: dt.datetime | None = None
) -> bytes:
    """An XDM zip (XDM-1/XDM-2) holding ``documents`` in one submission set."""
    now = now or dt.datetime.now(dt.UTC)
    names = [safe_filename(d.filename) for d in documents]
    if len(set(n.lower() for n in names)) != len(names):
        raise MalformedMessage("XDM document names must be unique")
    docs = [Attachment(n, d.content_type, d.data) for n, d in zip(names, documents, strict=True)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README.TXT", f"XDM package from {sender} (Blue Button Direct)\r\n")
        links = "".join(
            f'<li><a href="{_XDM_DIR}{escape(d.filename)}">{escape(d.filename)}</a></li>' for d in docs
        )
        zf.writestr(
            "INDEX.HTM", f"<html><head><title>XDM</title></head><body><ul>{links}</ul></body></html>\r\n"
        )
        zf.writestr(_XDM_DIR + "METADATA.XML", _xdm_metadata(docs, sender, recipient, now))
        for doc in docs:
            zf.writestr(_XDM_DIR + doc.filename, doc.data)
    return buf.getvalue()


#: What zipfile raises on a hostile archive besides BadZipFile (found by fuzzing a received package):
#: negative seeks, unknown versions/methods, truncated names, undecodable UTF-8 names, encrypted entries,
#: broken deflate streams.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    ValueError,
    IndexError,
    NotImplementedError,
    RuntimeError,
    EOFError,
    OSError,
    zlib.error,
)


def _open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:
        raise MalformedMessage("XDM attachment is not a zip file") from exc


def pack_xdm(
    attachments: Sequence[Attachment], sender: str, recipient: str, subject: str
) -> tuple[list[Attachment], str]:
    """The attachments as one ``XDM.ZIP`` (XDM-1/XDM-2) and the subject carrying ``XDM/1.0/DDM`` (XDM-3,
    ETT DTS 124). Nothing to pack: both returned unchanged."""
    if not attachments:
        return list(attachments), subject
    package = Attachment("XDM.ZIP", "application/zip", build_xdm(attachments, sender, recipient))
    return [package], subject if XDM_SUBJECT in subject else f"{XDM_SUBJECT} {subject}"


def is_xdm(att: Attachment) -> bool:
    """XDM-4: also accept XDM sent as application/octet-stream with a .zip name."""
    if att.content_type != "application/zip" and not att.filename.lower().endswith(".zip"):
        return False
    try:
        with _open_zip(att.data) as zf:
            return any(n.replace("\\", "/").upper().startswith("IHE_XDM/") for n in zf.namelist())
    except MalformedMessage:
        return False


def unpack_xdm(
    data: bytes, *, max_entries: int = MAX_XDM_ENTRIES, max_bytes: int = MAX_XDM_BYTES
) -> list[Attachment]:
    """The documents of an XDM zip (not METADATA.XML, README, INDEX), read defensively (XDM-6).

    Names with ``..``, absolute paths or drive letters are rejected; ``\\`` separators are accepted; the
    number of entries and the total uncompressed size are bounded (declared *and* actually read).
    """
    with _open_zip(data) as zf:
        infos = zf.infolist()
        if len(infos) > max_entries:
            raise MalformedMessage("XDM package has too many entries")
        total = 0
        out: list[Attachment] = []
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = name.split("/")
            if name.startswith("/") or ".." in parts or (len(name) > 1 and name[1] == ":"):
                # the name itself is not repeated: document names often carry a patient's name (PHI)
                raise MalformedMessage("unsafe path (absolute, drive or '..') in XDM package")
            if info.is_dir() or name.endswith("/"):
                continue
            total += info.file_size
            if total > max_bytes:
                raise MalformedMessage("XDM package is too large")
            upper = name.upper()
            if not upper.startswith("IHE_XDM/") or posixpath.basename(upper) == "METADATA.XML":
                continue
            try:
                with zf.open(info) as fh:
                    content = fh.read(info.file_size + 1)
            except _ZIP_ERRORS as exc:
                # encrypted entry, unknown compression, CRC mismatch, broken deflate stream (XDM-6)
                raise MalformedMessage(f"unreadable entry in XDM package ({type(exc).__name__})") from exc
            if len(content) > info.file_size:
                raise MalformedMessage("XDM entry larger than declared")
            base = posixpath.basename(name)
            out.append(Attachment(safe_filename(base), guess_type(base), content))
        return out

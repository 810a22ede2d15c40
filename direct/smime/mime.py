"""The S/MIME MIME layer: build and split ``multipart/signed`` and ``application/pkcs7-mime`` entities.

Built as bytes, not through ``email``'s generator, because the signature covers exact bytes: part 1 of a
multipart/signed is signed in its CRLF-canonical form (RFC 5751 §3.1.1, PIT-1) and the CRLF before each
delimiter belongs to the delimiter, not to the content (RFC 2046 §5.1.1, PIT-3). Splitting likewise works on
the raw bytes between the boundaries and never on a re-serialised object (PIT-2).
"""

from __future__ import annotations

import binascii
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from direct.errors import MalformedMessage
from direct.message import canonical_crlf
from direct.smime.signing import MICALG

CRLF = b"\r\n"
SIGNED_PROTOCOL = "application/pkcs7-signature"


def new_boundary() -> str:
    """ASCII, ≤ 70 characters, no ':' (RFC 2046 §5.1.1; ETT DTS 137-140)."""
    return f"----=_BBD_{uuid.uuid4().hex}"


#: Input bytes per base64 line: 57 encode to exactly 76 characters (RFC 2045 §6.8).
LINE_BYTES = 57
#: Input bytes encoded per call when streaming (a multiple of LINE_BYTES).
BLOCK_BYTES = LINE_BYTES * 2048
_LINES = re.compile(rb".{1,76}", re.DOTALL)


def _encode_lines(data: bytes | memoryview) -> bytes:
    """Base64 of ``data`` (a multiple of 57 bytes, or the final block) in CRLF-terminated 76-column lines:
    one ``b2a_base64`` for the whole block and a C-level split into lines."""
    if not len(data):
        return b""
    return CRLF.join(_LINES.findall(binascii.b2a_base64(data, newline=False))) + CRLF


def base64_lines(data: bytes) -> bytes:
    """Base64 in 76-character CRLF lines (RFC 2045 §6.8); the same bytes as ``base64.encodebytes`` with
    CRLF line ends."""
    return _encode_lines(data)


def base64_lines_length(size: int) -> int:
    """Length of :func:`base64_lines` output for ``size`` input bytes."""
    return 4 * ((size + 2) // 3) + 2 * ((size + LINE_BYTES - 1) // LINE_BYTES)


def write_base64_lines(chunks: Iterable[bytes], write: Callable[[bytes], object]) -> None:
    """Stream :func:`base64_lines` of the concatenated ``chunks`` to ``write``, a block at a time."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        view = memoryview(data)
        whole = len(view) - len(view) % LINE_BYTES
        for start in range(0, whole, BLOCK_BYTES):
            write(_encode_lines(view[start : min(start + BLOCK_BYTES, whole)]))
        carry = bytes(view[whole:])
    write(_encode_lines(carry))


def build_signed_parts(
    content: Sequence[bytes], signature_der: bytes, digest: str, boundary: str | None = None
) -> list[bytes]:
    """:func:`build_signed` as a list of byte strings, ``content``'s parts among them uncopied."""
    boundary = boundary or new_boundary()
    b = boundary.encode("ascii")
    header = (
        f'Content-Type: multipart/signed; protocol="{SIGNED_PROTOCOL}"; micalg={MICALG[digest]};\r\n'
        f' boundary="{boundary}"\r\n\r\n'
    ).encode("ascii")
    sig_part = (
        b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n' + base64_lines(signature_der)
    )
    opening = header + b"This is an S/MIME signed message\r\n\r\n--" + b + CRLF
    closing = CRLF + b"--" + b + CRLF + sig_part + CRLF + b"--" + b + b"--" + CRLF
    return [opening, *content, closing]


def build_signed(content: bytes, signature_der: bytes, digest: str, boundary: str | None = None) -> bytes:
    """A ``multipart/signed`` entity (headers + body) whose first part is ``content`` byte for byte.

    MSG-7 / PIT-18: ``protocol`` quoted exactly, ``micalg`` in RFC 5751 §3.4.3.2 spelling, parameters
    separated by ``;``, exactly two body parts (RFC 1847 §2.1, RFC 5751 §3.4.3); MSG-8: the signature part is
    base64 (RFC 5751 §3.1.3); no CTE on the multipart itself (RFC 2045 §6.4).
    """
    return b"".join(build_signed_parts([content], signature_der, digest, boundary))


def enveloped_headers(*, authenticated: bool = False) -> list[tuple[str, str]]:
    """Headers of an ``application/pkcs7-mime`` entity (MSG-6: RFC 5751 §3.2.2 smime-type, §3.2.1
    ``name``/``filename`` smime.p7m; RFC 8551 §3.2.2 authEnveloped-data)."""
    smime_type = "authEnveloped-data" if authenticated else "enveloped-data"
    return [
        ("Content-Type", f'application/pkcs7-mime; smime-type={smime_type}; name="smime.p7m"'),
        ("Content-Transfer-Encoding", "base64"),
        ("Content-Disposition", 'attachment; filename="smime.p7m"'),
    ]


def build_enveloped_body(der: bytes, *, authenticated: bool = False) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and base64 body of an ``application/pkcs7-mime`` entity (see :func:`enveloped_headers`)."""
    return enveloped_headers(authenticated=authenticated), base64_lines(der)


@dataclass
class SignedParts:
    """The two halves of a multipart/signed: the exact signed bytes and the signature part entity."""

    content: bytes
    signature_entity: bytes
    protocol: str | None
    micalg: str | None


def split_headers(entity: bytes) -> tuple[bytes, bytes]:
    """(header block, body) of an entity in CRLF form. A missing blank line means 'no body'."""
    if entity.startswith(CRLF):
        return b"", entity[2:]
    idx = entity.find(CRLF + CRLF)
    if idx < 0:
        return entity, b""
    return entity[: idx + 2], entity[idx + 4 :]


def header_block(entity: bytes) -> bytes:
    """The header block of :func:`split_headers` alone, without copying the body."""
    if entity.startswith(CRLF):
        return b""
    idx = entity.find(CRLF + CRLF)
    return entity if idx < 0 else entity[: idx + 2]


def _param(header_block: bytes, name: str) -> str | None:
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", header_block).decode("ascii", "replace")
    ctype = next((ln for ln in unfolded.split("\r\n") if ln.lower().startswith("content-type:")), "")
    match = re.search(rf';\s*{name}\s*=\s*(?:"([^"]*)"|([^;\s]+))', ctype, re.IGNORECASE)
    if not match:
        return None
    return match.group(1) if match.group(1) is not None else match.group(2)


def _delimiters(body: bytes, delim: bytes) -> list[tuple[int, int, bool]]:
    """(start of the CRLF before the delimiter, start of the next part, is-close) for each delimiter line.

    A delimiter line starts the body or follows CRLF, may end in ``--`` (close) and transport padding.
    """
    marks: list[tuple[int, int, bool]] = []
    pos = 0
    while (idx := body.find(delim, pos)) >= 0:
        pos = idx + len(delim)
        if idx == 0:
            before = 0
        elif body[idx - 2 : idx] == CRLF:
            before = idx - 2
        else:
            continue
        end = pos
        close = body[end : end + 2] == b"--"
        if close:
            end += 2
        while body[end : end + 1] in (b" ", b"\t"):
            end += 1
        if body[end : end + 2] == CRLF:
            end += 2
        elif end != len(body):
            continue  # the boundary string inside a longer line is not a delimiter
        marks.append((before, end, close))
        if close:
            break
    return marks


def split_signed(entity: bytes) -> SignedParts:
    """Cut a multipart/signed entity into signed bytes and signature part, on raw CRLF-canonical bytes."""
    entity = canonical_crlf(entity)
    header_block, body = split_headers(entity)
    boundary = _param(header_block, "boundary")
    if not boundary:
        raise MalformedMessage("multipart/signed without boundary")
    delim = b"--" + boundary.encode("ascii", "replace")
    marks = _delimiters(body, delim)
    if len(marks) < 3 or marks[0][2] or marks[1][2]:
        raise MalformedMessage("multipart/signed must have exactly two body parts")
    if not marks[2][2]:
        raise MalformedMessage("multipart/signed must have exactly two body parts (MSG-7)")

    def part(i: int) -> bytes:
        return body[marks[i][1] : marks[i + 1][0]]

    return SignedParts(part(0), part(1), _param(header_block, "protocol"), _param(header_block, "micalg"))


def decode_entity_body(entity: bytes) -> bytes:
    """Body of a single-part entity decoded per its Content-Transfer-Encoding (base64 or identity)."""
    header_block, body = split_headers(canonical_crlf(entity))
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", header_block).lower()
    cte = re.search(rb"^content-transfer-encoding:\s*([a-z0-9-]+)", unfolded, re.MULTILINE)
    if cte and cte.group(1) == b"base64":
        try:
            # a2b_base64 skips CRLF and other non-alphabet bytes itself (no extra copy of a large body).
            return binascii.a2b_base64(body)
        except binascii.Error as exc:
            raise MalformedMessage("bad base64 in S/MIME part") from exc
    if cte and cte.group(1) == b"quoted-printable":
        import quopri

        return quopri.decodestring(body)
    return body

"""direct.message: the wrapped inner message, attachment extraction, and XDM packages (build + safe unpack)."""

from __future__ import annotations

import io
import zipfile

import pytest

from direct.errors import AddressError, MalformedMessage
from direct.message import (
    DNO_VALUE,
    Attachment,
    attachments_of,
    build_message,
    build_xdm,
    canonical_crlf,
    is_xdm,
    parse_message,
    safe_filename,
    to_bytes,
    unpack_xdm,
)

CCDA = Attachment("ccd.xml", "application/xml", b"<ClinicalDocument>caf\xc3\xa9</ClinicalDocument>")


def test_inner_message_headers_and_parts():
    msg = build_message(
        "alice@a.example",
        ["bob@b.example", "carol@c.example"],
        "Records",
        "Hello \u00e9",
        [CCDA],
        cc_addrs=["dave@d.example"],
    )
    raw = to_bytes(msg)
    parsed = parse_message(raw)
    assert parsed["From"] == "alice@a.example" and parsed["To"] == "bob@b.example, carol@c.example"
    assert parsed["Cc"] == "dave@d.example" and "Bcc" not in parsed
    assert parsed["Disposition-Notification-Options"] == DNO_VALUE
    assert parsed["Disposition-Notification-To"] == "alice@a.example"
    assert (
        parsed["Date"]
        and parsed["Message-ID"].startswith("<")
        and parsed["Message-ID"].endswith("@a.example>")
    )
    assert parsed.get_body(("plain",)).get_content().rstrip() == "Hello \u00e9"
    assert [(a.filename, a.content_type, a.data) for a in attachments_of(parsed)] == [
        ("ccd.xml", "application/xml", CCDA.data)
    ]
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"")


def test_no_delivery_notification_request_when_disabled():
    msg = build_message("a@a.example", ["b@b.example"], "s", "t", request_delivery_notification=False)
    assert "Disposition-Notification-Options" not in msg


@pytest.mark.parametrize(
    "bad",
    [
        "not-an-address",
        "a@b.example, c@d.example",
        "x@y.example\r\nBcc: e@f.example",
        "",
        # refused by DirectAddress.parse but not by the old getaddresses check (one address validator now)
        "bob@localhost",
        "bob@[127.0.0.1]",
        "bob@-bad-.example",
        "a..b@x.example",
    ],
)
def test_bad_addresses_rejected(bad):
    with pytest.raises((AddressError, MalformedMessage)):
        build_message("alice@a.example", [bad], "s", "t")


def test_header_injection_in_subject_and_filename_rejected():
    with pytest.raises(MalformedMessage):
        build_message("alice@a.example", ["bob@b.example"], "hi\r\nBcc: eve@e.example", "t")
    with pytest.raises(MalformedMessage):
        build_message(
            "alice@a.example", ["bob@b.example"], "s", "t", [Attachment("a\nb.xml", "application/xml", b"x")]
        )


def test_canonical_crlf():
    assert canonical_crlf(b"a\nb\r\nc\rd") == b"a\r\nb\r\nc\r\nd"


def test_safe_filename():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\x\\ccd.xml") == "ccd.xml"
    assert safe_filename(".hidden") == "hidden"
    assert safe_filename("") == "attachment"


def test_xdm_layout_and_round_trip():
    data = build_xdm([CCDA, Attachment("notes.txt", "text/plain", b"n")], "alice@a.example", "bob@b.example")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        meta = zf.read("IHE_XDM/SUBSET01/METADATA.XML").decode()
    assert {"README.TXT", "INDEX.HTM", "IHE_XDM/SUBSET01/METADATA.XML", "IHE_XDM/SUBSET01/ccd.xml"} <= names
    assert "^^Internet^bob@b.example" in meta and "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd" in meta
    assert '<rim:Slot name="URI"><rim:ValueList><rim:Value>ccd.xml</rim:Value>' in meta
    assert is_xdm(Attachment("XDM.ZIP", "application/zip", data))
    assert is_xdm(Attachment("package.zip", "application/octet-stream", data))  # ETT SMTP Test 28
    docs = unpack_xdm(data)
    assert {(d.filename, d.data) for d in docs} == {("ccd.xml", CCDA.data), ("notes.txt", b"n")}


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name", ["../evil.xml", "/etc/passwd", "IHE_XDM/../../x", "C:/x.xml", "IHE_XDM\\..\\x"]
)
def test_unpack_rejects_traversal(name):
    with pytest.raises(MalformedMessage) as err:
        unpack_xdm(_zip({name: b"x"}))
    assert err.value.code == "malformed_message"
    # entry names of health record packages often carry a patient's name: never echoed in errors
    assert name not in err.value.message and "evil" not in err.value.message


def test_unpack_bounds_entries_and_size_and_accepts_backslashes():
    with pytest.raises(MalformedMessage):
        unpack_xdm(_zip({f"IHE_XDM/SUBSET01/{i}.xml": b"x" for i in range(5)}), max_entries=3)
    with pytest.raises(MalformedMessage):
        unpack_xdm(_zip({"IHE_XDM/SUBSET01/big.xml": b"0" * 5000}), max_bytes=1000)
    docs = unpack_xdm(_zip({"IHE_XDM\\SUBSET01\\DOC.XML": b"<x/>", "IHE_XDM\\SUBSET01\\METADATA.XML": b"m"}))
    assert [(d.filename, d.data) for d in docs] == [("DOC.XML", b"<x/>")]
    with pytest.raises(MalformedMessage):
        unpack_xdm(b"not a zip")


@pytest.mark.parametrize("ch", ["\x00", "\x0b", "\x0c", "\x1c", "\x7f", "\x85", "\u2028", "\u2029"])
def test_control_and_line_separator_characters_in_headers_are_a_coded_error(ch):
    """Not only CR/LF: NUL went into the Subject raw, and the characters str.splitlines() treats as line
    breaks made the email package raise a bare ValueError (a traceback in the CLI, an uncoded failure in
    the sidecar). Every one is refused with MalformedMessage before it reaches a header."""
    with pytest.raises(MalformedMessage):
        build_message("alice@a.example", ["bob@b.example"], f"hi{ch}there", "t")
    with pytest.raises(MalformedMessage):
        build_message(
            "alice@a.example",
            ["bob@b.example"],
            "s",
            "t",
            [Attachment(f"a{ch}b.xml", "application/xml", b"x")],
        )


def test_non_ascii_subject_is_encoded_not_raw():
    """Non-ASCII text is allowed but leaves as an RFC 2047 encoded-word: the header bytes stay ASCII."""
    msg = build_message("alice@a.example", ["bob@b.example"], "Résumé für Bob", "t")
    head = to_bytes(msg).split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?" in head.lower()


@pytest.mark.parametrize("name", ["Bcc", "X-Bad Name", "X:Y", "", "X-\u00e9"])
def test_extra_header_names_are_checked(name):
    """extra_headers may not add Bcc (MSG-5: never Bcc) nor a malformed field name (RFC 5322 §3.6.8)."""
    with pytest.raises(MalformedMessage):
        build_message("alice@a.example", ["bob@b.example"], "s", "t", extra_headers=[(name, "v")])


def _corrupt_zip(kind: str) -> bytes:
    data = bytearray(_zip({"IHE_XDM/SUBSET01/DOC.XML": b"hello world"}))
    central = data.find(b"PK\x01\x02")
    if kind == "encrypted":  # general-purpose flag bit 0 in the local and central headers
        data[6] |= 1
        data[central + 8] |= 1
    elif kind == "method":  # compression method 99 (WinZip AES): zipfile cannot read it
        data[8] = data[central + 10] = 99
    elif kind == "crc":  # stored content changed after the CRC was computed
        data[data.find(b"hello")] = ord("j")
    return bytes(data)


@pytest.mark.parametrize("kind", ["encrypted", "method", "crc"])
def test_unreadable_xdm_entries_are_malformed_not_exceptions(kind):
    """zipfile raises RuntimeError (encrypted entry), NotImplementedError (unknown method) or BadZipFile
    (CRC) while reading: a received package must give MalformedMessage like every other bad XDM."""
    with pytest.raises(MalformedMessage):
        unpack_xdm(_corrupt_zip(kind))


def test_mutated_xdm_packages_never_raise_anything_but_malformed():
    """Seeded byte mutations of a real package: unpack_xdm gives documents or MalformedMessage, is_xdm a
    bool (zipfile itself raises ValueError, IndexError, NotImplementedError, UnicodeDecodeError...)."""
    import random

    base = build_xdm(
        [Attachment("ccd.xml", "application/xml", b"<x>" + b"a" * 3000 + b"</x>")], "a@b.x", "c@d.x"
    )
    rng = random.Random(1)
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            unpack_xdm(bytes(data))
        except MalformedMessage:
            pass
        assert is_xdm(Attachment("x.zip", "application/zip", bytes(data))) in (True, False)

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
    "bad", ["not-an-address", "a@b.example, c@d.example", "x@y.example\r\nBcc: e@f.example", ""]
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


def test_unpack_bounds_entries_and_size_and_accepts_backslashes():
    with pytest.raises(MalformedMessage):
        unpack_xdm(_zip({f"IHE_XDM/SUBSET01/{i}.xml": b"x" for i in range(5)}), max_entries=3)
    with pytest.raises(MalformedMessage):
        unpack_xdm(_zip({"IHE_XDM/SUBSET01/big.xml": b"0" * 5000}), max_bytes=1000)
    docs = unpack_xdm(_zip({"IHE_XDM\\SUBSET01\\DOC.XML": b"<x/>", "IHE_XDM\\SUBSET01\\METADATA.XML": b"m"}))
    assert [(d.filename, d.data) for d in docs] == [("DOC.XML", b"<x/>")]
    with pytest.raises(MalformedMessage):
        unpack_xdm(b"not a zip")

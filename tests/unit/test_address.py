"""DirectAddress.parse: RFC 5321/5322 addr-spec, header-injection refusal, lookup normalisation."""

from __future__ import annotations

import pytest

from direct.address import DirectAddress
from direct.errors import AddressError


@pytest.mark.parametrize(
    ("text", "local", "domain"),
    [
        ("bob@direct.example.org", "bob", "direct.example.org"),
        ("<Bob.Smith@Direct.Example.ORG>", "Bob.Smith", "direct.example.org"),
        ("d1@domain1.dcdt31prod.sitenv.org", "d1", "domain1.dcdt31prod.sitenv.org"),
        ("o'brien+tag@h.example", "o'brien+tag", "h.example"),
        ('"john doe"@h.example', '"john doe"', "h.example"),
        ("x@h.example.", "x", "h.example"),
    ],
)
def test_valid_addresses(text: str, local: str, domain: str) -> None:
    addr = DirectAddress.parse(text)
    assert (addr.local, addr.domain) == (local, domain)
    assert str(addr) == f"{local}@{domain}"


@pytest.mark.parametrize(
    "text",
    [
        "bob@direct.example\r\nBcc: eve@evil.example",
        "bob@direct.example\n",
        "bob\x00@direct.example",
        "bob@direct.example, eve@evil.example",
        "bob@direct.example>eve@evil",
        "bob",
        "@direct.example",
        "bob@",
        "bob@localhost",
        "bob@[127.0.0.1]",
        "bo b@direct.example",
        "bob..x@direct.example",
        ".bob@direct.example",
        "bob@-bad.example",
        "bob@bad_host.example",
        "bob@1.2.3.4",
        "a" * 65 + "@direct.example",
        "bob@" + "a" * 250 + ".example",
        "(comment)bob@direct.example",
        "*)(mail=*@direct.example",
        "",
    ],
)
def test_invalid_addresses(text: str) -> None:
    with pytest.raises(AddressError) as info:
        DirectAddress.parse(text)
    assert info.value.code == "bad_address"


def test_lookup_normalisation_strips_tag_and_case() -> None:
    addr = DirectAddress.parse("Bob.Smith+labs@Direct.Example.org")
    assert addr.for_lookup == "bob.smith@direct.example.org"
    assert addr.dns_name == "bob.smith.direct.example.org"


def test_quoted_local_part_is_unquoted_for_lookup() -> None:
    addr = DirectAddress.parse(r'"a\"b"@h.example')
    assert addr.lookup_local == 'a"b'


def test_non_string_rejected() -> None:
    with pytest.raises(AddressError):
        DirectAddress.parse(b"bob@x.example")  # type: ignore[arg-type]

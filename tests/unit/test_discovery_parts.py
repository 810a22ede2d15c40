"""Pure parts of discovery: RFC 2782 SRV ordering, RFC 4515 filter escaping, nameserver parsing, JSON."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from direct.discovery.config import parse_nameserver
from direct.discovery.ldap import SrvTarget, mail_filter, order_srv


def test_priority_first() -> None:
    records = [SrvTarget(10, 0, 1, "c"), SrvTarget(0, 0, 1, "a"), SrvTarget(5, 50, 1, "b")]
    assert [r.host for r in order_srv(records)] == ["a", "b", "c"]


def test_weight_zero_never_beats_positive_weight() -> None:
    records = [SrvTarget(0, 0, 1, "zero"), SrvTarget(0, 100, 1, "hundred")]
    for seed in range(300):
        assert order_srv(records, random.Random(seed))[0].host == "hundred"


def test_weights_share_load_proportionally() -> None:
    records = [SrvTarget(0, 75, 1, "big"), SrvTarget(0, 25, 1, "small")]
    firsts = Counter(order_srv(records, random.Random(seed))[0].host for seed in range(2000))
    assert 1300 < firsts["big"] < 1700 and firsts["big"] + firsts["small"] == 2000


def test_all_zero_weights_keep_every_target() -> None:
    records = [SrvTarget(0, 0, 1, "x"), SrvTarget(0, 0, 2, "y")]
    assert sorted(r.host for r in order_srv(records)) == ["x", "y"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bob@x.test", "(mail=bob@x.test)"),
        ("*", "(mail=\\2a)"),
        ("*)(objectClass=*", "(mail=\\2a\\29\\28objectClass=\\2a)"),
        ("a\\b", "(mail=a\\5cb)"),
        ("nul\x00", "(mail=nul\\00)"),
    ],
)
def test_mail_filter_escapes_rfc4515(value: str, expected: str) -> None:
    assert mail_filter(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("ns.example", ("ns.example", 53)),
        ("[::1]:53", ("::1", 53)),
        ("::1", ("::1", 53)),
    ],
)
def test_parse_nameserver(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["", "host:", "host:abc", "host:0", "host:70000", ":53"])
def test_parse_nameserver_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(text)

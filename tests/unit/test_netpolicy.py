"""The outbound fetch policy (direct.netpolicy; issue 12, finding 3): which addresses are refused, the
allow-list, the pinned connection and the lookup budget."""

from __future__ import annotations

import socket
import time

import pytest

from direct import netpolicy
from direct.netpolicy import ALLOW_ENV, NetPolicy
from direct.trust.fetch import FetchError, HttpFetcher
from tests.support.httpfiles import HttpFiles


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "fe80::1",
        "fd00::1",  # ULA
        "100.64.0.1",  # CGNAT
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::808:808",  # NAT64 of a public address: still refused
        "224.0.0.1",
        "ff02::1",
        "0.0.0.0",
        "::",
        "240.0.0.1",
        "255.255.255.255",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "198.18.0.1",
        "192.0.2.1",
    ],
)
def test_internal_and_reserved_addresses_are_refused_by_default(address: str) -> None:
    assert NetPolicy().refusal(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert NetPolicy().refusal(address) is None


def test_allow_list_opens_only_what_it_names() -> None:
    policy = NetPolicy.from_strings(["127.0.0.0/8", "10.20.0.0/16"])
    assert policy.refusal("127.0.0.1") is None and policy.refusal("::ffff:127.0.0.1") is None
    assert policy.refusal("10.20.3.4") is None
    assert policy.refusal("10.21.0.1") is not None and policy.refusal("::1") is not None


def test_allow_list_from_environment_and_bad_entries(monkeypatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, " 192.168.0.0/16 ,fd00::/8")
    assert NetPolicy.from_env().refusal("192.168.7.7") is None
    assert NetPolicy.from_env().refusal("fd12::1") is None
    with pytest.raises(ValueError, match="CIDR"):
        NetPolicy.from_strings(["10.0.0.0/33"])


def test_fetch_to_loopback_refused_by_default_and_allowed_when_listed(monkeypatch) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    files = HttpFiles()
    try:
        url = files.put("/x", b"hello")
        with pytest.raises(FetchError) as err:
            HttpFetcher(timeout=1).get(url)
        assert err.value.code == "blocked_address" and files.hits.get("/x", 0) == 0
        assert HttpFetcher(timeout=1, policy=NetPolicy.from_strings(["127.0.0.1/32"])).get(url) == b"hello"
    finally:
        files.close()


def test_connection_is_pinned_to_the_checked_address(monkeypatch) -> None:
    """DNS rebinding: the name is resolved ONCE, checked, and the connection goes to that address. A
    resolver that answers the allowed address first and another one afterwards is asked only once."""
    files = HttpFiles()
    real = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.example":
            asked.append(host)
            target = "127.0.0.1" if len(asked) == 1 else "127.0.0.2"  # second answer: elsewhere
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (target, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        files.put("/pinned", b"pinned")
        fetcher = HttpFetcher(timeout=1, policy=NetPolicy.from_strings(["127.0.0.1/32"]))
        assert fetcher.get(f"http://rebind.example:{files.port}/pinned") == b"pinned"
        assert asked == ["rebind.example"]
    finally:
        files.close()


def test_budget_cuts_timeouts_and_expires() -> None:
    assert netpolicy.remaining() is None and netpolicy.cut(5.0) == 5.0
    with netpolicy.budget(0.2):
        assert netpolicy.cut(5.0) <= 0.2
        with netpolicy.budget(10):  # a nested budget never extends the outer one
            assert netpolicy.remaining() <= 0.2
        time.sleep(0.25)
        assert netpolicy.expired()
        with pytest.raises(netpolicy.DeadlineExceeded):
            netpolicy.cut(5.0)
    assert netpolicy.remaining() is None

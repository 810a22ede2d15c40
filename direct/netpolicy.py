"""The one outbound fetch policy: where the product may connect when a peer chooses the place.

Every fetch whose target comes from someone else's data goes through here: IPKIX URLs of DNS CERT records
(RFC 4398 §2.1), AIA caIssuers and CRL distribution points of certificates (RFC 5280 §4.2.2.1, §4.2.1.13),
trust bundle URLs (Trust Bundle Distribution IG), LDAP servers named by ``_ldap._tcp`` SRV records
(RFC 2782) and the authoritative DNS servers of a recipient's zone. A patient who types an address on a
domain they control chooses all of these, so without a policy the sidecar is a request-forgery proxy into
its own network (issue 12, finding 3).

The policy:

* **Refused by default**: loopback, link-local, private (RFC 1918), shared/CGNAT (RFC 6598), unique-local
  (RFC 4193), NAT64 (RFC 6052, RFC 8215), multicast, documentation, benchmarking, "this network" and reserved
  ranges — :data:`BLOCKED_NETWORKS`, plus anything Python does not consider globally reachable. An
  IPv4-mapped or 6to4 IPv6 address is judged by the IPv4 address inside it.
* **Allow-list**: networks an operator names explicitly (``direct.allow_networks``, environment
  ``BBDIRECT_DIRECT_ALLOW_NETWORKS``, comma-separated CIDRs) are allowed even when in a refused range:
  intranet HISPs, the tests' loopback servers, ``make demo``.
* **Pinned**: a host name is resolved once (:meth:`NetPolicy.resolve`), every address checked, and the
  caller connects to that checked address — never to the name again, so a second DNS answer (rebinding)
  cannot move the connection.
* **Bounded**: at most :attr:`NetPolicy.max_urls_per_cert` URLs of one kind are tried per certificate, and one
  lookup has a total time budget (:func:`budget`, :attr:`NetPolicy.lookup_deadline`, 10 s by default); every
  socket operation inside it is cut to what is left, and when it runs out the lookup ends with
  ``discovery_deadline`` (:class:`direct.errors.DiscoveryDeadline`).
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The environment variable of the allow-list (fixed contract: same name as the ``direct.allow_networks``
#: setting of the sidecar, honoured by ``bbdirect lookup``, ``send``, ``serve`` and ``worker``).
ALLOW_ENV = "BBDIRECT_DIRECT_ALLOW_NETWORKS"

#: Default cap on URLs of one kind (AIA, CRL, IPKIX per name) tried per certificate.
MAX_URLS_PER_CERT = 2
#: Default total budget of one lookup, seconds.
LOOKUP_DEADLINE = 10.0


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), label) for cidr, label in pairs)


#: Ranges refused unless allow-listed, each with the words used in the refusal.
BLOCKED_NETWORKS = _nets(
    ("0.0.0.0/8", "'this network' (RFC 1122)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared/CGNAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (RFC 3927)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation (RFC 5737)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation (RFC 5737)"),
    ("203.0.113.0/24", "documentation (RFC 5737)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b::/96", "NAT64 (RFC 6052)"),
    ("64:ff9b:1::/48", "local NAT64 (RFC 8215)"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001::/32", "Teredo (RFC 4380)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("fc00::/7", "unique-local (RFC 4193)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (RFC 3879)"),
    ("ff00::/8", "multicast"),
)


class NetPolicyError(Exception):
    """An outbound connection the policy refuses or cannot complete. ``code`` is stable."""

    code = "net_policy"

    def __init__(self, message: str, code: str | None = None):
        if code:
            self.code = code
        super().__init__(message)


class BlockedAddress(NetPolicyError):
    code = "blocked_address"


class Unresolvable(NetPolicyError):
    code = "unreachable"


class DeadlineExceeded(NetPolicyError):
    code = "deadline"


def _inner_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped (``::ffff:a.b.c.d``) or 6to4 (``2002:ab:cd::``) address stands for."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (``10.1.0.0/16``, ``::1/128``; a bare address is a /32 or /128) → networks. Raises ValueError
    naming the bad entry."""
    out: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not a network (CIDR): {text!r}") from None
    return tuple(out)


@dataclass(frozen=True)
class NetPolicy:
    """Where peer-chosen fetches may go, how many URLs per certificate, how long one lookup may take."""

    #: Networks allowed even inside a refused range (intranet peers; tests; the demo).
    allow: tuple[IPNetwork, ...] = ()
    max_urls_per_cert: int = MAX_URLS_PER_CERT
    lookup_deadline: float = LOOKUP_DEADLINE

    @classmethod
    def from_strings(cls, networks: Iterable[str], **kwargs: float | int) -> NetPolicy:
        return cls(allow=parse_networks(networks), **kwargs)  # type: ignore[arg-type]  # the int/float limit fields

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NetPolicy:
        """The strict default plus the allow-list of ``BBDIRECT_DIRECT_ALLOW_NETWORKS`` (comma-separated
        CIDRs): what the CLI commands use when they are not given a policy. A bad entry raises ValueError."""
        env = os.environ if env is None else env
        return cls.from_strings(env.get(ALLOW_ENV, "").split(","))

    # --- judging -----------------------------------------------------------------------------------------
    def refusal(self, address: str | IPAddress) -> str | None:
        """None when a connection to ``address`` is allowed, else the words for why not."""
        ip = ipaddress.ip_address(str(address).split("%", 1)[0]) if isinstance(address, str) else address
        if any(ip in net for net in self.allow if net.version == ip.version):
            return None
        inner = _inner_ipv4(ip)
        if inner is not ip and any(inner in net for net in self.allow if net.version == inner.version):
            return None
        for candidate in {ip, inner}:
            for net, label in BLOCKED_NETWORKS:
                if net.version == candidate.version and candidate in net:
                    return label
        if not inner.is_global:
            return "not globally reachable"
        return None

    def check(self, address: str, what: str) -> None:
        """Raise :class:`BlockedAddress` when ``address`` (the one about to be connected to) is refused."""
        label = self.refusal(address)
        if label is not None:
            raise BlockedAddress(
                f"{what} resolves to {address}, a {label} address: refused by the outbound fetch policy "
                "(allow it with direct.allow_networks)"
            )

    def resolve(self, host: str, port: int, what: str | None = None) -> list[str]:
        """Resolve ``host`` ONCE and check every address; return them for the caller to connect to (pinned).

        Refuses the name when any of its addresses is refused: a name that answers with both a public and
        an internal address is not one we connect to. ``what`` names the target in the error.
        """
        what = what or host
        literal = host.strip("[]")
        try:
            addresses = [str(ipaddress.ip_address(literal.split("%", 1)[0]))]
        except ValueError:
            try:
                infos = socket.getaddrinfo(literal, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
            except (OSError, UnicodeError) as exc:
                raise Unresolvable(f"{what} does not resolve") from exc
            addresses = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
        if not addresses:
            raise Unresolvable(f"{what} does not resolve")
        for address in addresses:
            self.check(address, what)
        return addresses

    def first_urls(self, urls: list[str]) -> tuple[list[str], list[str]]:
        """(the URLs to try, the ones dropped by the per-certificate cap)."""
        return urls[: self.max_urls_per_cert], urls[self.max_urls_per_cert :]


#: The default policy (nothing allow-listed).
STRICT = NetPolicy()


def url_cap(fetcher: object) -> int:
    """How many URLs of one kind per certificate the fetcher's policy allows (default when it has none)."""
    try:
        policy = getattr(fetcher, "policy", None)
    except Exception:  # a fetcher whose policy cannot be read (bad environment): its get() will say so
        policy = None
    return policy.max_urls_per_cert if isinstance(policy, NetPolicy) else MAX_URLS_PER_CERT


# --- the total budget of one lookup ---------------------------------------------------------------------
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("lookup_deadline", default=None)


@contextlib.contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Run the block under a total deadline of ``seconds`` (nested budgets keep the earlier end). Fetches,
    DNS queries and LDAP sessions inside cut their timeouts to :func:`remaining`."""
    end = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left in the current budget (never negative), or None outside any budget."""
    end = _deadline.get()
    return None if end is None else max(0.0, end - time.monotonic())


def expired() -> bool:
    left = remaining()
    return left is not None and left <= 0.0


def cut(timeout: float) -> float:
    """``timeout`` limited to what is left of the budget; raises :class:`DeadlineExceeded` when nothing is."""
    left = remaining()
    if left is None:
        return timeout
    if left <= 0.0:
        raise DeadlineExceeded("the lookup's time budget is spent")
    return min(timeout, left)

"""Fetching small objects (CA certificates, CRLs, trust bundles, IPKIX certificates) over HTTP.

This is the one I/O edge of path validation and discovery that talks to the web. Everything fetched comes
from an untrusted peer (a URL inside a certificate or a DNS record), so every fetch has a connect/read
timeout, a total deadline and a size cap, and only ``http``/``https`` URLs are followed.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import requests
import urllib3


class FetchError(Exception):
    """A URL could not be fetched (unreachable, too slow, too big, bad scheme). ``code`` is stable."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


class Fetcher(Protocol):
    """Anything that turns a URL into bytes or raises :class:`FetchError`."""

    def get(self, url: str) -> bytes: ...


class HttpFetcher:
    """``GET`` with limits. ``timeout`` is per socket operation, ``deadline`` for the whole body."""

    def __init__(self, *, timeout: float = 5.0, deadline: float = 10.0, max_bytes: int = 1_000_000):
        self.timeout = timeout
        self.deadline = deadline
        self.max_bytes = max_bytes
        self._session = requests.Session()
        self._session.trust_env = False  # never route test or peer URLs through an ambient proxy

    def get(self, url: str) -> bytes:
        start = time.monotonic()
        for _hop in range(MAX_REDIRECTS + 1):
            _check_url(url)
            body, location = self._get_once(url, start)
            if location is None:
                return body
            url = urljoin(url, location)
        raise FetchError("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")

    def _get_once(self, url: str, start: float) -> tuple[bytes, str | None]:
        """One GET without following redirects: (body, None) or (b"", Location of a redirect)."""
        try:
            with self._session.get(
                url, timeout=(self.timeout, self.timeout), stream=True, allow_redirects=False
            ) as resp:
                if resp.is_redirect and resp.headers.get("Location"):
                    return b"", resp.headers["Location"]
                if resp.status_code != 200:
                    raise FetchError("http_status", f"HTTP {resp.status_code} from {url}")
                declared = resp.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise FetchError("too_large", f"{url} is larger than {self.max_bytes} bytes")
                body = bytearray()
                # read1: return whatever arrived (one socket read), so the deadline is checked after
                # every read; iter_content(n) blocks until n bytes, which a trickling peer never completes.
                while chunk := resp.raw.read1(16_384, decode_content=True):
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        raise FetchError("too_large", f"{url} is larger than {self.max_bytes} bytes")
                    if time.monotonic() - start > self.deadline:
                        raise FetchError("timeout", f"{url} took longer than {self.deadline}s")
                return bytes(body), None
        except (requests.Timeout, urllib3.exceptions.ReadTimeoutError) as exc:
            raise FetchError("timeout", f"{url} did not answer in {self.timeout}s") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            # raw reads raise urllib3's own exceptions (requests wraps them only in iter_content)
            raise FetchError("unreachable", f"{url} is unreachable ({type(exc).__name__})") from exc


#: Redirects followed (each hop's target is checked like the first URL).
MAX_REDIRECTS = 3


def _check_url(url: str) -> None:
    """Only http(s), and never to a link-local (169.254/16: cloud metadata), multicast, unspecified or
    reserved address: the URL comes from a peer's certificate or DNS record. Loopback and private networks
    stay allowed (intranet HISPs, the test services). A name that resolves differently at connect time (DNS
    rebinding) is not covered by this check."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise FetchError("bad_url", f"only http(s) URLs are fetched, not {parts.scheme or 'this'!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError) as exc:
        raise FetchError("unreachable", f"{parts.hostname} does not resolve") from exc
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
            raise FetchError("blocked_address", f"{parts.hostname} resolves to a blocked address")


class NoFetcher:
    """A fetcher that never touches the network (offline validation)."""

    def get(self, url: str) -> bytes:
        raise FetchError("offline", "network fetching is disabled")


class CachingFetcher:
    """Remember successful fetches for ``ttl`` seconds (AIA CA certificates change rarely; without this a
    recipient whose intermediate is only reachable through AIA costs one HTTP round trip per lookup).
    Not for CRLs: :class:`~direct.trust.revocation.CrlCache` keys its cache on the CRL's nextUpdate."""

    def __init__(self, inner: Fetcher, *, ttl: float = 3600.0, max_entries: int = 1024):
        import threading

        self.inner = inner
        self.ttl = ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[bytes, float]] = {}

    def get(self, url: str) -> bytes:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(url)
        if hit and now < hit[1]:
            return hit[0]
        body = self.inner.get(url)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[url] = (body, now + self.ttl)
        return body

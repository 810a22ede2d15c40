"""Fetching small objects (CA certificates, CRLs, trust bundles, IPKIX certificates) over HTTP.

This is the one I/O edge of path validation and discovery that talks to the web. Everything fetched comes
from an untrusted peer (a URL inside a certificate or a DNS record), so every fetch has a connect/read
timeout, a total deadline and a size cap, only ``http``/``https`` URLs are followed, and where it connects
is decided by the one outbound fetch policy (:mod:`direct.netpolicy`): internal ranges refused unless
allow-listed, the connection pinned to the address that was checked.
"""

from __future__ import annotations

import time
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import urllib3

from direct import netpolicy
from direct.netpolicy import NetPolicy, NetPolicyError


class FetchError(Exception):
    """A URL could not be fetched (unreachable, too slow, too big, bad scheme). ``code`` is stable."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


class Fetcher(Protocol):
    """Anything that turns a URL into bytes or raises :class:`FetchError`."""

    def get(self, url: str) -> bytes: ...


class HttpFetcher:
    """``GET`` with limits under the outbound fetch policy (:mod:`direct.netpolicy`).

    ``timeout`` is per socket operation, ``deadline`` for the whole body; both are cut to what is left of
    the current lookup's budget. ``policy`` decides where we may connect (default: the strict policy plus
    the ``BBDIRECT_DIRECT_ALLOW_NETWORKS`` allow-list). The host is resolved once, its addresses checked,
    and the connection made to the checked address (TLS still verifies the certificate for the host name
    and sends it as SNI): a name that answers differently the second time cannot move the connection.
    ``ca_certs``: a PEM bundle to verify https servers with (default: the system's).
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        deadline: float = 10.0,
        max_bytes: int = 1_000_000,
        policy: NetPolicy | None = None,
        ca_certs: str | None = None,
    ):
        self.timeout = timeout
        self.deadline = deadline
        self.max_bytes = max_bytes
        self._policy = policy
        self.ca_certs = ca_certs

    @property
    def policy(self) -> NetPolicy:
        """The policy given, else the strict one plus ``BBDIRECT_DIRECT_ALLOW_NETWORKS`` (read when used, so a
        module-level fetcher follows the environment of the command that runs)."""
        if self._policy is not None:
            return self._policy
        try:
            return NetPolicy.from_env()
        except ValueError as exc:
            raise FetchError("bad_allow_networks", str(exc)) from None

    def get(self, url: str) -> bytes:
        start = time.monotonic()
        for _hop in range(MAX_REDIRECTS + 1):
            body, location = self._get_once(url, start)
            if location is None:
                return body
            url = urljoin(url, location)  # each hop is checked like the first URL
        raise FetchError("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")

    def _timeout(self, start: float, url: str) -> float:
        left = self.deadline - (time.monotonic() - start)
        if left <= 0:
            raise FetchError("timeout", f"{url} took longer than {self.deadline}s")
        try:
            return netpolicy.cut(min(self.timeout, left))
        except NetPolicyError as exc:
            raise FetchError("deadline", f"{url} not fetched: the lookup's time budget is spent") from exc

    def _get_once(self, url: str, start: float) -> tuple[bytes, str | None]:
        """One GET without following redirects: (body, None) or (b"", Location of a redirect)."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise FetchError("bad_url", f"only http(s) URLs are fetched, not {parts.scheme or 'this'!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise FetchError("bad_url", "the URL has a bad port") from exc
        host = parts.hostname
        try:
            address = self.policy.resolve(host, port, what=host)[0]  # resolved once, checked, pinned
        except NetPolicyError as exc:
            raise FetchError(exc.code, str(exc)) from exc
        timeout = self._timeout(start, url)
        pool_timeout = urllib3.Timeout(connect=timeout, read=timeout)
        if parts.scheme == "https":
            pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
                address,
                port,
                server_hostname=host,
                assert_hostname=host,
                cert_reqs="CERT_REQUIRED",
                ca_certs=self.ca_certs,
                timeout=pool_timeout,
                retries=False,
                maxsize=1,
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=pool_timeout, retries=False, maxsize=1)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rsplit("@", 1)[-1]  # never send URL credentials
        headers = {"Host": netloc, "User-Agent": "bbdirect", "Accept-Encoding": "identity"}
        try:
            with pool:
                resp = pool.urlopen(
                    "GET", target, headers=headers, redirect=False, retries=False, preload_content=False
                )
                try:
                    if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                        return b"", resp.headers["Location"]
                    if resp.status != 200:
                        raise FetchError("http_status", f"HTTP {resp.status} from {url}")
                    declared = resp.headers.get("Content-Length")
                    if declared and declared.isdigit() and int(declared) > self.max_bytes:
                        raise FetchError("too_large", f"{url} is larger than {self.max_bytes} bytes")
                    body = bytearray()
                    # read1: whatever arrived (one socket read), so the deadline is checked after every
                    # read; read(n) blocks until n bytes, which a trickling peer never completes.
                    while chunk := resp.read1(16_384):
                        body.extend(chunk)
                        if len(body) > self.max_bytes:
                            raise FetchError("too_large", f"{url} is larger than {self.max_bytes} bytes")
                        self._timeout(start, url)
                    return bytes(body), None
                finally:
                    resp.release_conn()
        except urllib3.exceptions.NewConnectionError as exc:  # refused (a ConnectTimeoutError subclass)
            raise FetchError("unreachable", f"{url} is unreachable ({type(exc).__name__})") from exc
        except (urllib3.exceptions.TimeoutError, TimeoutError) as exc:
            if netpolicy.expired():
                raise FetchError("deadline", f"{url} not fetched: the lookup's time budget is spent") from exc
            raise FetchError("timeout", f"{url} did not answer in {timeout:.1f}s") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if netpolicy.expired():
                raise FetchError("deadline", f"{url} not fetched: the lookup's time budget is spent") from exc
            raise FetchError("unreachable", f"{url} is unreachable ({type(exc).__name__})") from exc


#: Redirects followed (each hop's target is checked like the first URL).
MAX_REDIRECTS = 3


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

    @property
    def policy(self) -> NetPolicy | None:
        """The outbound fetch policy of the wrapped fetcher (its per-certificate URL cap applies)."""
        return getattr(self.inner, "policy", None)

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

"""Trust bundles (Implementation Guide for Direct Project Trust Bundle Distribution) and the TrustStore.

A trust bundle is a PKCS#7 certs-only file (``.p7b``/``.p7c``, DER or PEM) of trust anchors published by a
trust community at a URL; it MAY be wrapped in a CMS SignedData signed by the community, in which case the
signature is verified against the configured bundle-signing certificate (direct.md TB-1). Each bundle has
its own refresh interval (TB-2). A failed refresh keeps the last good anchors and records the failure, so a
community web server outage does not silently drop every recipient.

Trust Bundle Distribution IG (direct.md TB-1, TB-2): a bundle distributed as a CMS SignedData has its
signature verified against the configured signing certificate; when one is configured for a bundle, a bundle
whose signature does not verify — or that is not signed at all — is refused (UNMATCHED_SIGNATURE) with a
clear reason (``last_error``/``last_reason``) and the last good anchors are kept. Bundles are fetched over
``https`` with TLS validated (TB-4); a plain ``http://`` URL is refused unless explicitly allowed
(``allow_http``), and every fetch follows the outbound fetch policy (:mod:`direct.netpolicy`).

Anchors are scoped per bundle: a local domain can be configured to trust only some bundles (TB-3, the Java
RI's ``TrustBundleDomainReltn``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from direct.certs import load_certificates
from direct.trust.fetch import Fetcher, FetchError, HttpFetcher

log = logging.getLogger(__name__)

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class BundleError(Exception):
    """A bundle could not be used. ``code``: invalid_bundle_format, unmatched_signature, or a fetch code."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class TrustBundle:
    """Configuration of one bundle. ``refresh_interval`` in seconds (<= 0: load once, never refresh)."""

    name: str
    url: str
    refresh_interval: float = 86_400.0
    #: The community's bundle-signing certificate(s): when set, the bundle MUST be a CMS SignedData that one
    #: of them verifies (Trust Bundle Distribution IG).
    signing_cert: x509.Certificate | Sequence[x509.Certificate] | None = None


@dataclass
class BundleStatus:
    """What we know about one bundle now; ``anchors`` is the last good set."""

    name: str
    anchors: list[x509.Certificate] = field(default_factory=list)
    last_attempt: float | None = None
    last_success: float | None = None
    last_error: str | None = None  # stable code of the last failed refresh, None after a success
    last_reason: str | None = None  # the words for it (no peer content), None after a success
    digest: str | None = None  # sha256 of the raw bytes last loaded
    refreshes: int = 0


# --- parsing ---------------------------------------------------------------------------------------------
def _pem_body(data: bytes) -> bytes:
    import base64

    lines = [ln for ln in data.strip().splitlines() if not ln.startswith(b"-----")]
    return base64.b64decode(b"".join(lines))


def parse_bundle(
    data: bytes, signing_cert: x509.Certificate | Sequence[x509.Certificate] | None = None
) -> list[x509.Certificate]:
    """The anchors in a bundle file. A signed bundle must verify against ``signing_cert`` (one of them, when
    several are given); when a signing certificate is configured an unsigned bundle is refused (it could be
    anyone's)."""
    if isinstance(signing_cert, x509.Certificate):
        signers: list[x509.Certificate] = [signing_cert]
    else:
        signers = list(signing_cert or [])
    raw = data  # never strip DER: its last byte is a signature byte and may be whitespace
    if data.lstrip().startswith((b"-----BEGIN PKCS7", b"-----BEGIN CMS")):
        try:
            raw = _pem_body(data)
        except ValueError as exc:
            raise BundleError("invalid_bundle_format", "bad PEM armour") from exc
    signed = _signed_content(raw)
    if signed is not None:
        content, signer_infos, _embedded = signed
        if signers:
            _verify_any(content, signer_infos, signers)
        raw = content
    elif signers:
        raise BundleError(
            "unmatched_signature", "the bundle is not signed but a signing certificate is configured"
        )
    try:
        certs = load_certificates(raw)
    except ValueError as exc:
        raise BundleError("invalid_bundle_format", "not a PKCS#7 bundle or PEM certificates") from exc
    if not certs:
        raise BundleError("invalid_bundle_format", "the bundle holds no certificate")
    return certs


def _signed_content(raw: bytes) -> tuple[bytes, cms.SignerInfos, cms.CertificateSet] | None:
    """(eContent, signer_infos, certificates) when ``raw`` is a SignedData WITH signers, else None."""
    try:
        info = cms.ContentInfo.load(raw)
        if info["content_type"].native != "signed_data":
            return None
        sd = info["content"]
        signers = sd["signer_infos"]
        if len(signers) == 0:
            return None  # degenerate certs-only PKCS#7: a plain bundle
        content = sd["encap_content_info"]["content"]
        if content is None or content.native is None:
            raise BundleError("invalid_bundle_format", "signed bundle without encapsulated content")
        payload = content.native
        if not isinstance(payload, bytes):
            payload = content.contents
        return payload, signers, sd["certificates"]
    except BundleError:
        raise
    except (ValueError, TypeError, KeyError):
        return None


def _verify_any(content: bytes, signer_infos: cms.SignerInfos, signers: Sequence[x509.Certificate]) -> None:
    """Trust Bundle Distribution IG: the signature MUST verify with a configured signing certificate."""
    for cert in signers[:-1]:
        try:
            _verify_signature(content, signer_infos, cert)
            return
        except BundleError:
            continue
    _verify_signature(content, signer_infos, signers[-1])


def _verify_signature(content: bytes, signer_infos: cms.SignerInfos, signing_cert: x509.Certificate) -> None:
    """CMS (RFC 5652 §5.4) signature check of any SignerInfo by ``signing_cert``."""
    for si in signer_infos:
        sid = si["sid"]
        if sid.name == "issuer_and_serial_number":
            ias = sid.chosen
            if ias["serial_number"].native != signing_cert.serial_number:
                continue
        digest_name = si["digest_algorithm"]["algorithm"].native
        hash_cls = _HASHES.get(digest_name)
        if hash_cls is None or hash_cls is hashes.SHA1:
            continue
        signed_attrs = si["signed_attrs"]
        if signed_attrs is not None and len(signed_attrs):
            digest = next(
                (a["values"][0].native for a in signed_attrs if a["type"].native == "message_digest"), None
            )
            h = hashes.Hash(hash_cls())
            h.update(content)
            if digest != h.finalize():
                continue
            to_verify = b"\x31" + signed_attrs.dump()[1:]  # RFC 5652 §5.4: DER of the SET OF, not [0]
        else:
            to_verify = content
        signature = si["signature"].native
        key = signing_cert.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, to_verify, padding.PKCS1v15(), hash_cls())
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, to_verify, ec.ECDSA(hash_cls()))
            else:
                continue
        except InvalidSignature:
            continue
        return
    raise BundleError(
        "unmatched_signature", "no signature on the bundle verifies with the signing certificate"
    )


# --- the store -----------------------------------------------------------------------------------------
Direction = Literal["incoming", "outgoing"]


def _by_domain(mapping: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    return {d.lower(): list(names) for d, names in (mapping or {}).items()}


class TrustStore:
    """Anchors from files plus several refreshed bundles, scoped per local domain."""

    def __init__(
        self,
        anchors: Iterable[x509.Certificate] = (),
        bundles: Sequence[TrustBundle] = (),
        *,
        domain_bundles: Mapping[str, Sequence[str]] | None = None,
        incoming_bundles: Mapping[str, Sequence[str]] | None = None,
        outgoing_bundles: Mapping[str, Sequence[str]] | None = None,
        fetcher: Fetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
        allow_http: bool = False,
    ):
        self.static = list(anchors)
        #: Plain ``http://`` bundle URLs are refused (``insecure_url``) unless this is set (tests, a trusted
        #: intranet); a signing certificate protects the content, https its freshness and privacy.
        self.allow_http = allow_http
        self.bundles = {b.name: b for b in bundles}
        self.domain_bundles = _by_domain(domain_bundles)
        #: TB-3 / CERT-5: per local domain, the bundles trusted for mail we RECEIVE (signers of inbound
        #: messages and MDNs) and for mail we SEND (recipients' certificates), like the Java RI's
        #: TrustBundleDomainReltn incoming/outgoing flags. A direction not configured for a domain falls
        #: back to ``domain_bundles`` (both directions); a domain configured only for the other direction
        #: trusts no bundle in this one (static anchors still apply).
        self.directional = {
            "incoming": _by_domain(incoming_bundles),
            "outgoing": _by_domain(outgoing_bundles),
        }
        # the default fetcher follows the outbound fetch policy (strict + BBDIRECT_DIRECT_ALLOW_NETWORKS)
        self.fetcher = fetcher or HttpFetcher(timeout=10, deadline=30, max_bytes=20_000_000)
        self.clock = clock
        self._status = {b.name: BundleStatus(b.name) for b in bundles}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshed = threading.Condition()

    # --- reading -------------------------------------------------------------------------------------
    def bundle_names(self, local_domain: str | None = None, direction: Direction | None = None) -> list[str]:
        """The bundles ``local_domain`` trusts in ``direction`` (see ``directional``); all when unscoped."""
        if not local_domain:
            return list(self.bundles)
        domain = local_domain.lower()
        if direction is not None and domain in self.directional[direction]:
            return self.directional[direction][domain]
        if domain in self.domain_bundles:
            return self.domain_bundles[domain]
        if any(domain in scoped for scoped in self.directional.values()):
            return []  # configured for the other direction only
        return list(self.bundles)

    def anchors_for(
        self, local_domain: str | None = None, direction: Direction | None = None
    ) -> list[x509.Certificate]:
        """Static anchors + the anchors of the bundles this local domain trusts in ``direction``
        (``"incoming"``: signers of what we receive; ``"outgoing"``: recipients we send to; None: either
        scoping of ``domain_bundles``). All bundles when the domain is not configured at all."""
        names = self.bundle_names(local_domain, direction)
        with self._lock:
            out = list(self.static)
            for name in names:
                status = self._status.get(name)
                if status:
                    out.extend(status.anchors)
        return out

    def status(self, name: str) -> BundleStatus:
        with self._lock:
            s = self._status[name]
            return BundleStatus(
                s.name,
                list(s.anchors),
                s.last_attempt,
                s.last_success,
                s.last_error,
                s.last_reason,
                s.digest,
                s.refreshes,
            )

    # --- refreshing ----------------------------------------------------------------------------------
    def due(self) -> list[str]:
        now = self.clock()
        out = []
        with self._lock:
            for name, bundle in self.bundles.items():
                last = self._status[name].last_attempt
                if last is None or (bundle.refresh_interval > 0 and now - last >= bundle.refresh_interval):
                    out.append(name)
        return out

    def refresh_due(self) -> list[BundleStatus]:
        """Refresh every bundle whose interval has elapsed; return their new status."""
        return [self.refresh(name) for name in self.due()]

    def refresh(self, name: str) -> BundleStatus:
        bundle = self.bundles[name]
        started = self.clock()
        try:
            if urlsplit(bundle.url).scheme.lower() == "http" and not self.allow_http:
                raise BundleError(
                    "insecure_url", "plain http:// bundle URL refused (https required unless allowed)"
                )
            raw = self.fetcher.get(bundle.url)
            digest = hashlib.sha256(raw).hexdigest()
            with self._lock:
                unchanged = digest == self._status[name].digest
            anchors = None if unchanged else parse_bundle(raw, bundle.signing_cert)
        except (FetchError, BundleError) as exc:
            with self._lock:
                st = self._status[name]
                st.last_attempt, st.last_error, st.last_reason = started, exc.code, str(exc)
            log.warning(
                "trust bundle %s refresh failed (%s: %s); keeping the last good %d anchors",
                name,
                exc.code,
                exc,
                len(self._status[name].anchors),
            )
        else:
            with self._lock:
                st = self._status[name]
                if anchors is not None:
                    st.anchors, st.digest = anchors, digest  # replaced atomically (TB-2)
                st.last_attempt = st.last_success = started
                st.last_error = st.last_reason = None
                st.refreshes += 1
        with self.refreshed:
            self.refreshed.notify_all()
        return self.status(name)

    def start(self, poll: float = 30.0) -> None:
        """Refresh due bundles in a daemon thread every ``poll`` seconds until :meth:`stop`."""
        if self._thread:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.is_set():
                self.refresh_due()
                self._stop.wait(poll)

        self._thread = threading.Thread(target=run, name="trust-bundles", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)
            self._thread = None

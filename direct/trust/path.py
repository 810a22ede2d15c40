"""RFC 5280 certification path validation for Direct (not TLS web-PKI rules).

Why our own validator rather than a TLS verifier: DCDT's CAs carry a *non-critical* basicConstraints and an
intermediate *without* authorityKeyIdentifier. RFC 5280 §6.1 only needs ``cA=TRUE`` and name chaining, so
those paths are valid; TLS-profile verifiers (CA/B Forum rules) reject them. The checks here are exactly the
RFC 5280 §6.1.3/§6.1.4 ones that matter for Direct:

* name chaining + signature of every certificate by the next one (§6.1.3 (a)(1), (a)(4));
* validity at the validation moment for every non-anchor certificate (§6.1.3 (a)(2));
* every issuer below the anchor is a CA (basicConstraints cA, criticality ignored) allowed to sign
  certificates (keyUsage keyCertSign when keyUsage is present) within its pathLenConstraint (§6.1.4 (k)-(n));
* no unrecognised critical extension (§6.1.4 (o));
* revocation by CRL (§6.3) — an unobtainable CRL is a reported soft failure (direct.md CERT-7);
* the path ends at a configured trust anchor, root or intermediate (§6.1.1 (d); Direct AS §4.2);
* missing intermediates are fetched from AIA caIssuers (AS §4.2.2, DCDT D18).

The leaf additionally needs the key usage of the ``purpose`` (RFC 5750 §4.4.2). Trust anchors are trust
information, not certificates to validate (RFC 5280 §6.1.1 (d)), so their dates are not checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID

from direct.certs import Purpose, der, fits_purpose, is_current, load_certificates, utcnow, weak_key
from direct.errors import Expired, Revoked, TrustError, Untrusted, WeakKey, WrongKeyUsage
from direct.netpolicy import url_cap
from direct.trust.fetch import Fetcher, FetchError, HttpFetcher
from direct.trust.revocation import CrlCache

#: Longest path we build (leaf + intermediates), as the Java RI's maximum issuer chain length.
MAX_DEPTH = 6
#: Budget of candidate paths (anchored + dead ends) and of certificates considered as issuers. A sender
#: chooses the certificates in its SignedData: same-named CAs under shared keys make the number of distinct
#: paths grow as n^depth, so without a budget one message costs minutes of signature checks.
MAX_PATHS = 64
MAX_POOL = 64

#: Extensions this validator understands (so a *critical* one of them is not a reason to reject).
_KNOWN = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.CRL_DISTRIBUTION_POINTS,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.ISSUER_ALTERNATIVE_NAME,
}

#: Digests too weak for a Direct certificate signature (AS 1.3 / ETT: SHA-256 or better; direct.md CERT-8).
_WEAK = (hashes.SHA1, hashes.MD5)

_default_fetcher = HttpFetcher()
#: The process-wide CRL cache used when callers do not bring their own.
DEFAULT_CRLS = CrlCache(_default_fetcher)


@dataclass
class ChainResult:
    """A validated path: ``path`` is leaf first and ends with ``anchor`` (or with the last known issuer)."""

    path: list[x509.Certificate]
    anchor: x509.Certificate | None
    #: Soft failures worth showing (unreachable CRL, AIA fetch problems); never PHI.
    warnings: list[str] = field(default_factory=list)
    #: True when every CRL the path's certificates point to was obtained and verified (no soft failure).
    revocation_checked: bool = False

    @property
    def trusted(self) -> bool:
        return self.anchor is not None


def check_leaf(cert: x509.Certificate, purpose: Purpose, moment: dt.datetime | None = None) -> None:
    """Dates, key size and key usage of the end-entity certificate (raises :class:`Expired`,
    :class:`WeakKey`, :class:`WrongKeyUsage`)."""
    moment = moment or utcnow()
    if not is_current(cert, moment):
        raise Expired("the certificate is expired or not yet valid")
    # ALG-8 (AS 1.3 / ANSI/DS 2019-01-100-2021 key sizes, ETT CERT_LESS_THAN_2048_BITS): an RSA key under
    # 2048 bits MUST NOT be used, whether we encrypt to it (recipient) or verify with it (signer).
    if (weak := weak_key(cert)) is not None:
        raise WeakKey(weak)
    if not fits_purpose(cert, purpose):
        what = "encryption (keyEncipherment)" if purpose == "encrypt" else "signing (digitalSignature)"
        raise WrongKeyUsage(f"the certificate's key usage does not allow {what}")
    _check_critical(cert)
    _check_digest(cert)


def validate_chain(
    cert: x509.Certificate,
    *,
    intermediates: Iterable[x509.Certificate] = (),
    anchors: Iterable[x509.Certificate] = (),
    purpose: Purpose = "encrypt",
    moment: dt.datetime | None = None,
    fetcher: Fetcher | None = None,
    crls: CrlCache | None = None,
    require_anchor: bool = True,
) -> ChainResult:
    """Validate ``cert`` for ``purpose`` up to one of ``anchors``; return the path or raise a TrustError.

    ``fetcher`` fetches AIA intermediates (default: HTTP with limits; pass ``NoFetcher()`` for offline);
    ``crls`` is the CRL cache (default: a process-wide one on the same HTTP fetcher). With
    ``require_anchor=False`` (patient-initiated sends, :class:`~direct.trust.policy.TrustPolicy.PUBLIC`) a
    path that does not reach an anchor is still accepted if everything else holds; ``result.trusted`` then
    reports False.
    """
    moment = moment or utcnow()
    fetcher = fetcher if fetcher is not None else _default_fetcher
    crls = crls if crls is not None else (DEFAULT_CRLS if fetcher is _default_fetcher else CrlCache(fetcher))
    check_leaf(cert, purpose, moment)
    anchor_list = list(anchors)
    pool = _dedupe([*intermediates])
    warnings: list[str] = []
    best_error: TrustError | None = None
    paths = _build_paths(cert, pool, anchor_list, fetcher, warnings)
    partial: list[x509.Certificate] | None = None
    for path, anchor in paths:
        try:
            _check_path(path, anchor, moment)
        except TrustError as exc:
            best_error = best_error or exc
            continue
        if anchor is None:
            partial = partial or path
            continue
        return _revocation(ChainResult(path, anchor, warnings), crls, moment)
    if best_error is not None and not isinstance(best_error, Untrusted):
        raise best_error
    if not require_anchor:
        return _revocation(ChainResult(partial or [cert], None, warnings), crls, moment)
    if best_error is not None:
        raise best_error
    raise Untrusted("the certificate does not chain to any configured trust anchor")


# --- path building -----------------------------------------------------------------------------------------
def _dedupe(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[bytes] = set()
    out: list[x509.Certificate] = []
    for c in certs:
        d = der(c)
        if d not in seen:
            seen.add(d)
            out.append(c)
    return out


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, ValueError):
        return None


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except (x509.ExtensionNotFound, ValueError):
        return None


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Name chaining, key identifiers when both sides have them, and a valid signature."""
    if child.issuer != parent.subject:
        return False
    aki, ski = _aki(child), _ski(parent)
    if aki is not None and ski is not None and aki != ski:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _aia_urls(cert: x509.Certificate) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [
        d.access_location.value
        for d in aia
        if d.access_method == x509.oid.AuthorityInformationAccessOID.CA_ISSUERS
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def _cap(urls: list[str], fetcher: Fetcher) -> tuple[list[str], list[str]]:
    cap = url_cap(fetcher)
    return urls[:cap], urls[cap:]


def _fetch_issuers(cert: x509.Certificate, fetcher: Fetcher, warnings: list[str]) -> list[x509.Certificate]:
    found: list[x509.Certificate] = []
    # Outbound fetch policy (direct.netpolicy): at most a few AIA URLs per certificate — four slow ones held
    # a web request for 20 s (issue 12, finding 3).
    urls, dropped = _cap(_aia_urls(cert), fetcher)
    if dropped:
        warnings.append(f"aia_urls_capped: {len(urls)} of {len(urls) + len(dropped)} AIA URLs tried")
    for url in urls:
        try:
            found.extend(load_certificates(fetcher.get(url)))
        except FetchError as exc:
            warnings.append(f"aia_unreachable: {url} ({exc.code})")
        except ValueError:
            warnings.append(f"aia_invalid: {url}")
    return found


def _build_paths(
    leaf: x509.Certificate,
    pool: list[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    fetcher: Fetcher,
    warnings: list[str],
) -> list[tuple[list[x509.Certificate], x509.Certificate | None]]:
    """Every candidate path from ``leaf`` (depth-first), anchored ones first, then dead ends."""
    anchor_ders = {der(a) for a in anchors}
    anchored: list[tuple[list[x509.Certificate], x509.Certificate | None]] = []
    dead: list[tuple[list[x509.Certificate], x509.Certificate | None]] = []
    fetched: set[bytes] = set()
    del pool[MAX_POOL:]
    verdicts: dict[tuple[bytes, bytes], bool] = {}

    def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
        key = (der(child), der(parent))
        if key not in verdicts:
            verdicts[key] = _issued_by(child, parent)
        return verdicts[key]

    def walk(path: list[x509.Certificate]) -> None:
        if len(anchored) + len(dead) >= MAX_PATHS:
            return  # budget spent: what was found so far is judged (anchored paths come first)
        current = path[-1]
        if der(current) in anchor_ders:  # the leaf itself may be configured as an anchor
            anchored.append((path[:-1] or [current], current))
            return
        for anchor in anchors:
            if issued_by(current, anchor):
                anchored.append((path, anchor))
        if len(path) > MAX_DEPTH:
            dead.append((path, None))
            return
        ders = {der(c) for c in path}
        issuers = [
            c for c in pool if der(c) not in ders and der(c) not in anchor_ders and issued_by(current, c)
        ]
        if not issuers and der(current) not in fetched:
            fetched.add(der(current))
            for cand in _fetch_issuers(current, fetcher, warnings):
                if der(cand) in anchor_ders:
                    continue
                if len(pool) < MAX_POOL:
                    pool.append(cand)
                if issued_by(current, cand):
                    issuers.append(cand)
        if not issuers:
            dead.append((path, None))
        for issuer in issuers:
            walk([*path, issuer])

    walk([leaf])
    return anchored + dead


# --- path checks ---------------------------------------------------------------------------------------
def _check_critical(cert: x509.Certificate) -> None:
    for ext in cert.extensions:
        if ext.critical and ext.oid not in _KNOWN:
            raise Untrusted(f"unrecognised critical extension {ext.oid.dotted_string}")


def _check_digest(cert: x509.Certificate) -> None:
    try:
        algo = cert.signature_hash_algorithm
    except UnsupportedAlgorithm as exc:  # an OID cryptography cannot name: not a usable certificate
        raise Untrusted("the certificate is signed with an unsupported algorithm") from exc
    if algo is not None and isinstance(algo, _WEAK):
        raise Untrusted(f"the certificate is signed with {algo.name}, which is no longer accepted")


def _check_ca(ca: x509.Certificate, below: int) -> None:
    """RFC 5280 §6.1.4 (k) cA=TRUE (criticality deliberately ignored), (l)/(m) pathLen, (n) keyCertSign."""
    try:
        bc = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound as exc:
        raise Untrusted("an issuing certificate in the chain is not a CA (no basicConstraints)") from exc
    if not bc.ca:
        raise Untrusted("an issuing certificate in the chain is not a CA")
    if bc.path_length is not None and below > bc.path_length:
        raise Untrusted("the chain is longer than a CA's pathLenConstraint allows")
    try:
        ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    if ku is not None and not ku.key_cert_sign:
        raise Untrusted("an issuing certificate in the chain may not sign certificates")


def _check_path(path: list[x509.Certificate], anchor: x509.Certificate | None, moment: dt.datetime) -> None:
    # path[0] is the leaf (already checked by check_leaf); path[1:] are intermediates below the anchor.
    for depth, ca in enumerate(path[1:], start=1):
        if not is_current(ca, moment):
            raise Expired("an intermediate certificate in the chain is expired or not yet valid")
        _check_critical(ca)
        _check_digest(ca)
        # number of intermediate CAs below this one (self-issued excluded per §6.1.4 (l))
        _check_ca(ca, below=sum(1 for c in path[1:depth] if c.issuer != c.subject))
    if anchor is not None and der(anchor) != der(path[0]):
        below = sum(1 for c in path[1:] if c.issuer != c.subject)
        # Anchor constraints are applied when the anchor is a CA certificate (RFC 5937 style).
        _check_ca(anchor, below=below)


def _revocation(result: ChainResult, crls: CrlCache, moment: dt.datetime) -> ChainResult:
    """Check each non-anchor certificate against its issuer's CRL; unreachable CRLs become warnings."""
    chain = [*result.path, *([result.anchor] if result.anchor is not None else [])]
    checked_all = True
    for i, cert in enumerate(result.path):
        if result.anchor is not None and der(cert) == der(result.anchor):
            continue
        issuer = chain[i + 1] if i + 1 < len(chain) else None
        status = crls.status(cert, issuer, moment)
        if status.checked and status.revoked:
            raise Revoked(
                "the certificate has been revoked by its issuer"
                if i == 0
                else "a certificate in the chain has been revoked"
            )
        if status.problem:  # a published CRL we could not use; no CDP at all counts as "not revoked"
            result.warnings.append(status.problem)
            checked_all = False
    result.revocation_checked = checked_all
    return result

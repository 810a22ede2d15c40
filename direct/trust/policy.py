"""The per-send trust policy, and the one function that decides whether a discovered certificate is usable.

Two policies (direct.md CERT-5 vs TRUST-7):

* ``TRUSTED`` — clinician-initiated sends (Applicability Statement §4.2): the recipient certificate MUST chain
  to a trust anchor configured for us.
* ``PUBLIC`` — patient-initiated sends. The Blue Button+ guidance: "it's okay to use publicly discovered
  certificates to send a Direct message initiated by the consumer"; there does not need to be a matching
  trust anchor. Everything else still holds (binding, validity, key usage, revocation) and the verdict says
  ``trusted=False`` so the user interface can tell the patient the recipient is not in a trust community.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography import x509

from direct.address import DirectAddress
from direct.certs import Binding, Purpose, binds
from direct.errors import DirectError, NotBound, TrustError
from direct.trust.fetch import Fetcher
from direct.trust.path import validate_chain
from direct.trust.revocation import CrlCache


class TrustPolicy(StrEnum):
    TRUSTED = "trusted"
    PUBLIC = "public"


@dataclass
class Verdict:
    """Is a certificate usable for this recipient under this policy, and is it anchored?"""

    usable: bool
    trusted: bool
    error: DirectError | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str | None:
        return self.error.code if self.error else None


def binds_as(cert: x509.Certificate, address: DirectAddress, binding: Binding) -> bool:
    """SAN binding for the step that found the certificate: :func:`direct.certs.binds` (one rule)."""
    return binds(cert, address, binding)


def evaluate(
    cert: x509.Certificate,
    address: DirectAddress,
    binding: Binding,
    *,
    policy: TrustPolicy = TrustPolicy.TRUSTED,
    anchors: Iterable[x509.Certificate] = (),
    intermediates: Iterable[x509.Certificate] = (),
    purpose: Purpose = "encrypt",
    fetcher: Fetcher | None = None,
    crls: CrlCache | None = None,
    moment: dt.datetime | None = None,
) -> Verdict:
    """Binding, then RFC 5280 validation (dates, key usage, path, CRL) under ``policy``."""
    if not binds_as(cert, address, binding):
        what = "rfc822Name" if binding == "address" else "dNSName"
        return Verdict(False, False, NotBound(f"no subjectAltName {what} matches {binding} of the address"))
    try:
        result = validate_chain(
            cert,
            intermediates=intermediates,
            anchors=anchors,
            purpose=purpose,
            moment=moment,
            fetcher=fetcher,
            crls=crls,
            require_anchor=policy is TrustPolicy.TRUSTED,
        )
    except TrustError as exc:
        return Verdict(False, False, exc)
    return Verdict(True, result.trusted, None, result.warnings)

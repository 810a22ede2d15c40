"""Signer trust for :func:`direct.smime.unseal`: an adapter over the one RFC 5280 validator.

CERT-5: the sender's certificate must chain to a trust anchor we accept for incoming mail (root or
intermediate). Path building, dates, CA flags, AIA and CRL checks all live in
:func:`direct.trust.path.validate_chain`; this module only turns its verdict into a :class:`ChainCheck`
(trusted or not, and why) so the unseal report can name the signer even when trust fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from direct.errors import TrustError
from direct.trust.path import validate_chain


@dataclass
class ChainCheck:
    trusted: bool
    reason: str = ""
    code: str = ""
    path: tuple[x509.Certificate, ...] = ()


def check_chain(
    leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate]
) -> ChainCheck:
    """Does the signer ``leaf`` chain (through the certificates the message carried) to one of ``anchors``?"""
    if not anchors:
        return ChainCheck(False, "no trust anchors configured", "untrusted")
    try:
        result = validate_chain(leaf, intermediates=intermediates, anchors=anchors, purpose="sign")
    except TrustError as exc:
        return ChainCheck(False, exc.message, exc.code)
    return ChainCheck(result.trusted, "" if result.trusted else "no trust anchor", "", tuple(result.path))

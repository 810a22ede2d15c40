"""S/MIME for Direct: sign + encrypt outbound messages, decrypt + verify inbound ones, in-process.

Public API (see docs/direct-messages.md): :class:`Identity`, :class:`SealOptions`, :func:`seal`,
:func:`unseal`, :class:`UnsealResult`. Lower layers: :mod:`.signing` (CMS SignedData), :mod:`.envelope`
(CMS EnvelopedData / AuthEnvelopedData), :mod:`.mime` (multipart/signed bytes), :mod:`.chain` (signer trust).
"""

from direct.smime.identity import Identity, load_certificate_files, load_certificates
from direct.smime.seal import SealOptions, UnsealResult, seal, unseal

__all__ = [
    "Identity",
    "SealOptions",
    "UnsealResult",
    "load_certificate_files",
    "load_certificates",
    "seal",
    "unseal",
]

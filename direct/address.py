"""Direct addresses: strict parsing first, so nothing odd reaches DNS, LDAP filters or mail headers.

A Direct address is an RFC 5321 ``Mailbox`` (``Local-part "@" Domain``; RFC 5322 addr-spec without comments
or obsolete forms). We parse it once, here, and every other module receives a :class:`DirectAddress`, never
raw text: that is why header injection (CR/LF, NUL, a second address after a comma) is refused at this
boundary rather than escaped in ten places.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from direct.errors import AddressError
from direct.text import has_control

# RFC 5322 §3.2.3 atext (ASCII only; SMTPUTF8 addresses are not used in Direct).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
# RFC 5321 §4.1.2 Quoted-string: qtextSMTP (printable ASCII but " and \) or a quoted-pair.
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"\Z')
# RFC 5321 §4.1.2 Domain: sub-domain *("." sub-domain), Let-dig [Ldh-str].
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")

#: RFC 5321 §4.5.3.1 size limits.
MAX_LOCAL = 64
MAX_DOMAIN = 255
MAX_PATH = 254


@dataclass(frozen=True, slots=True)
class DirectAddress:
    """One validated Direct address. ``local`` keeps its case (RFC 5321 §2.4); ``domain`` is lower-case."""

    local: str
    domain: str

    @classmethod
    def parse(cls, text: str) -> DirectAddress:
        """Parse ``local@domain`` (optionally in ``<...>``); raise :class:`AddressError` on anything else."""
        if not isinstance(text, str):
            raise AddressError("the address must be text")
        # Header injection material is refused before any other processing (never silently stripped).
        if has_control(text):
            raise AddressError("the address contains control characters (CR, LF, NUL, TAB...)")
        raw = text.strip(" ")
        if raw.startswith("<") and raw.endswith(">"):
            raw = raw[1:-1]
        if not raw:
            raise AddressError("the address is empty")
        if len(raw) > MAX_PATH:
            raise AddressError(f"the address is longer than {MAX_PATH} characters")
        at = raw.rfind("@")
        if at <= 0 or at == len(raw) - 1:
            raise AddressError("the address must look like name@domain")
        local, domain = raw[:at], raw[at + 1 :]
        if not (_DOT_ATOM.match(local) or _QUOTED.match(local)):
            raise AddressError("the part before @ contains characters an address may not contain")
        if len(local) > MAX_LOCAL:
            raise AddressError(f"the part before @ is longer than {MAX_LOCAL} characters")
        domain = _parse_domain(domain)
        return cls(local, domain)

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def lookup_local(self) -> str:
        """The local part used for discovery: unquoted, ``+tag`` sub-address removed, lower-case.

        DNS names are case-insensitive and LDAP ``mail`` matches caseIgnoreIA5 (direct.md PIT-12), and the
        Java RI strips ``+ext`` before looking up a certificate.
        """
        local = self.local
        if local.startswith('"'):
            local = re.sub(r"\\(.)", r"\1", local[1:-1])
        elif "+" in local.lstrip("+"):
            local = local[: local.index("+", 1)]
        return local.lower()

    @property
    def for_lookup(self) -> str:
        """``local@domain`` normalised for discovery and certificate binding comparison."""
        return f"{self.lookup_local}@{self.domain}"

    @property
    def dns_name(self) -> str:
        """The address-bound DNS owner name (Discovery IG: ``@`` replaced by ``.``), no final dot."""
        return f"{self.lookup_local}.{self.domain}"


def parse_domain(text: str) -> str:
    """A host/domain name as :meth:`DirectAddress.parse` accepts it (lower-case; AddressError otherwise)."""
    if not isinstance(text, str) or has_control(text):
        raise AddressError("the domain contains control characters")
    return _parse_domain(text)


def _parse_domain(domain: str) -> str:
    if domain.startswith("[") or domain.endswith("]"):
        raise AddressError("address literals ([1.2.3.4]) are not Direct addresses")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise AddressError("the domain is not a valid internationalised domain name") from exc
    domain = (
        domain.lower().rstrip(".") if domain.endswith(".") and not domain.endswith("..") else domain.lower()
    )
    if len(domain) > MAX_DOMAIN:
        raise AddressError(f"the domain is longer than {MAX_DOMAIN} characters")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise AddressError("the domain is not a valid host name (letters, digits, hyphens, at least one dot)")
    if labels[-1].isdigit():
        raise AddressError("the domain is not a valid host name (numeric top-level label)")
    return domain

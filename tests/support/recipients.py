"""Recipients the browser and OpenEMR tests send to: certificates issued and published in DNS (BIND9 CERT
records), and the TOML the sidecar reads — one helper for both worlds (tests/e2e, tests/openemr)."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization


def cert_record(owner: str, issued: Any) -> str:
    """A DNS CERT record (RFC 4398, type PKIX) carrying the leaf only: issued straight from the anchor, so
    discovery needs no intermediates."""
    der = issued.cert.public_bytes(serialization.Encoding.DER)
    return f"{owner} 300 IN CERT PKIX 0 0 ( {base64.b64encode(der).decode()} )"


def publish_recipients(
    pki: Any, bind: Any, addresses: dict[str, str], *, rogue_ca: Any, nocert: str = "nocert", app: str = "app"
) -> dict[str, Any]:
    """Issue a certificate per recipient (the ``app`` role from ``rogue_ca``, a CA we do not trust; the
    ``nocert`` role gets none) and publish each domain's CERT records; returns {address: Issued}."""
    identities: dict[str, Any] = {}
    zones: dict[str, list[str]] = {}
    for role, address in addresses.items():
        local, domain = address.split("@")
        zones.setdefault(domain, [])
        if role == nocert:
            continue
        issued = pki.address(address, issuer=rogue_ca if role == app else pki.root)
        identities[address] = issued
        zones[domain].append(cert_record(local, issued))
    for domain, records in zones.items():
        bind.zone(domain, records or ['@ 300 IN TXT "no certificates here"'])
    return identities


def toml_text(values: dict[str, dict[str, Any]]) -> str:
    """The sidecar's config file for ``values`` ({section: {key: value}})."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines: list[str] = []
    for section, table in values.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)

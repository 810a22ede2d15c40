"""``bbdirect certs``: make and inspect Direct certificates.

``init`` gives an installation (or the compose stack, or a developer) its own CA and address- or
domain-bound identities in one command, so nothing about Direct needs OpenSSL recipes. ``show`` prints
the facts that decide whether a certificate can be used for Direct (bindings, key usage, validity).
Private keys are written owner-only and never printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from direct import certgen
from direct.address import DirectAddress
from direct.certs import can_encrypt, can_sign, dns_names, load_certificates, rfc822_names, sha256_hex
from direct.errors import AddressError
from direct.text import shown


def _stem(name: str) -> str:
    return name.replace("@", "_at_").replace("/", "_")


@click.group()
def certs() -> None:
    """Create a demo/test CA and Direct identities, or inspect certificates."""


@certs.command("init")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--address", "addresses", multiple=True, help="Address-bound identity (repeatable).")
@click.option("--domain", "domains", multiple=True, help="Domain-bound identity (repeatable).")
@click.option("--ca-name", default="Blue Button Direct CA", show_default=True)
@click.option("--days", type=int, default=825, show_default=True, help="Validity of the identities.")
@click.option("--json", "as_json", is_flag=True, help="Print the written files as JSON.")
def init(
    directory: Path,
    addresses: tuple[str, ...],
    domains: tuple[str, ...],
    ca_name: str,
    days: int,
    as_json: bool,
) -> None:
    """Write ca.pem/ca.key and one NAME.pem/NAME.key per identity into DIR (keeps an existing CA)."""
    if not addresses and not domains:
        raise click.UsageError("give at least one --address or --domain")
    try:
        checked = [str(DirectAddress.parse(a)) for a in addresses]
    except AddressError as exc:
        raise click.UsageError(exc.message) from exc
    ca_cert_path, ca_key_path = directory / "ca.pem", directory / "ca.key"
    if ca_cert_path.exists() and ca_key_path.exists():
        ca = certgen.Issued(
            load_certificates(ca_cert_path.read_bytes())[0],
            certgen.load_private_key(ca_key_path.read_bytes()),
        )
    else:
        ca = certgen.make_ca(ca_name)
        ca.write(directory, "ca")
    written: dict[str, dict[str, str]] = {}
    for address in checked:
        cert_path, key_path = certgen.make_leaf(ca, address=address, days=days).write(
            directory, _stem(address)
        )
        written[address] = {"cert": str(cert_path), "key": str(key_path), "binding": "address"}
    for domain in domains:
        cert_path, key_path = certgen.make_leaf(ca, domain=domain, days=days).write(directory, _stem(domain))
        written[domain] = {"cert": str(cert_path), "key": str(key_path), "binding": "domain"}
    if as_json:
        click.echo(json.dumps({"ca": str(ca_cert_path), "identities": written}, indent=2))
        return
    click.echo(f"CA: {ca_cert_path}")
    for name, files in written.items():
        click.echo(f"{name} ({files['binding']}-bound): {files['cert']} + {files['key']}")


@certs.command("show")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True)
def show(files: tuple[Path, ...], as_json: bool) -> None:
    """Print the Direct-relevant facts of every certificate in FILES (PEM, DER or PKCS#7)."""
    out: list[dict[str, Any]] = []
    for path in files:
        try:
            found = load_certificates(path.read_bytes())
        except ValueError:
            click.echo(f"error: {path.name} holds no certificate", err=True)
            sys.exit(1)
        for cert in found:
            out.append(
                {
                    "file": str(path),
                    "subject": cert.subject.rfc4514_string(),
                    "issuer": cert.issuer.rfc4514_string(),
                    "addresses": rfc822_names(cert),
                    "domains": dns_names(cert),
                    "can_sign": can_sign(cert),
                    "can_encrypt": can_encrypt(cert),
                    "not_before": cert.not_valid_before_utc.isoformat(),
                    "not_after": cert.not_valid_after_utc.isoformat(),
                    "sha256": sha256_hex(cert),
                }
            )
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for item in out:  # certificate text may come from a peer: escaped for the terminal
        click.echo(f"{shown(item['subject'])}  (issuer {shown(item['issuer'])})")
        bound = shown(", ".join(item["addresses"] + item["domains"])) or "nothing (no Direct binding)"
        click.echo(f"  bound to: {bound}; sign: {item['can_sign']}; encrypt: {item['can_encrypt']}")
        click.echo(f"  valid {item['not_before']} .. {item['not_after']}; sha256 {item['sha256']}")

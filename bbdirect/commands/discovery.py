"""``bbdirect lookup`` (find and judge a Direct address's certificates) and ``bbdirect publish`` (emit the
BIND zone records and LDIF that make OUR certificates discoverable, so peers can encrypt MDNs back to us).

The ``lookup --json`` output and exit codes are a fixed contract that scripts depend on:
0 = at least one usable certificate selected, 2 = none usable / none found / servers down, 1 = usage error.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from direct.address import DirectAddress, parse_domain
from direct.certs import dns_names, load_certificates, rfc822_names, sha256_hex, subject_text
from direct.discovery import CertificateResolver, DiscoveryConfig, LookupResult, parse_nameserver
from direct.errors import AddressError
from direct.netpolicy import ALLOW_ENV, NetPolicy
from direct.text import has_control, shown
from direct.trust.anchors import AnchorFileError, load_anchor_files
from direct.trust.policy import TrustPolicy

from .options import existing_files, trust_policy_option

EXIT_OK, EXIT_USAGE, EXIT_NONE = 0, 1, 2


class _Command(click.Command):
    """A click command whose usage errors exit 1 (click's default is 2, which the contract gives to
    "no usable certificate")."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            # click's exit_code is a class default; this instance exits 1 (the contract's usage code).
            exc.exit_code = EXIT_USAGE  # type: ignore[misc]  # instance override of click's ClassVar default
            raise


def _usage_error(as_json: bool, address: str, code: str, message: str) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "address": address,
                    "selected": [],
                    "candidates": [],
                    "error": {"code": code, "message": message},
                }
            )
        )
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.command(cls=_Command)
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON (the fixed lookup contract).")
@click.option(
    "--nameserver",
    "nameservers",
    multiple=True,
    envvar="BBDIRECT_NAMESERVER",
    help="DNS server HOST:PORT to ask (repeatable; env BBDIRECT_NAMESERVER, space-separated). "
    "Default: the system resolvers.",
)
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    type=click.Path(dir_okay=False),
    envvar="BBDIRECT_ANCHORS",
    help="Trust anchor file, PEM/DER/PKCS#7 (repeatable; env BBDIRECT_ANCHORS, space-separated).",
)
@trust_policy_option(
    "trusted: must chain to an anchor (clinician send). public: patient-initiated send; a valid, "
    "unrevoked, correctly bound certificate is enough and is reported as not trusted.",
    envvar="BBDIRECT_TRUST_POLICY",
)
@click.option("--timeout", type=float, default=3.0, show_default=True, help="DNS timeout per server (s).")
@click.option(
    "--ldap-timeout",
    type=float,
    default=2.0,
    show_default=True,
    help="Connect timeout per LDAP server (s); a server slower than this is skipped.",
)
@click.option(
    "--allow-networks",
    "allow_networks",
    default="",
    envvar=ALLOW_ENV,
    help="Comma-separated CIDR networks that IPKIX, AIA, CRL and LDAP fetches may reach although internal "
    "(loopback, private, link-local, ULA, CGNAT, NAT64... are refused otherwise; env "
    f"{ALLOW_ENV}, the sidecar's direct.allow_networks).",
)
def lookup(
    address: str,
    as_json: bool,
    nameservers: tuple[str, ...],
    anchors: tuple[str, ...],
    policy: str,
    timeout: float,
    ldap_timeout: float,
    allow_networks: str,
) -> None:
    """Discover the certificates of ADDRESS (DNS CERT, then LDAP) and show which are usable."""
    try:
        addr = DirectAddress.parse(address)
    except AddressError as exc:
        _usage_error(as_json, address, exc.code, exc.message)
        return
    try:
        servers = [parse_nameserver(ns) for ns in nameservers]
    except ValueError as exc:
        _usage_error(as_json, address, "bad_nameserver", str(exc))
        return
    try:
        anchor_certs = load_anchor_files(anchors)
    except AnchorFileError as exc:
        _usage_error(as_json, address, exc.code, str(exc))
        return
    try:
        net_policy = NetPolicy.from_strings(allow_networks.split(","))
    except ValueError as exc:
        _usage_error(as_json, address, "bad_allow_networks", str(exc))
        return
    if policy == "trusted" and not anchor_certs:
        click.echo("warning: no trust anchors given (--anchor); no certificate can be trusted", err=True)
    config = DiscoveryConfig(
        nameservers=servers,
        anchors=anchor_certs,
        dns_timeout=timeout,
        ldap_connect_timeout=ldap_timeout,
        net_policy=net_policy,
    )
    result = CertificateResolver(config).lookup(addr, TrustPolicy(policy))
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        for warning in result.warnings:  # soft failures go to stderr so stdout stays pure JSON
            click.echo(f"note: {shown(warning, 300)}", err=True)
    else:
        click.echo(render_table(result, policy))
    sys.exit(EXIT_OK if result.selected else EXIT_NONE)


_COLUMNS = ("STATUS", "SOURCE", "BINDING", "EXPIRES", "VERDICT", "SHA-256", "SUBJECT")


def render_table(result: LookupResult, policy: str = "trusted") -> str:
    """The readable ``lookup`` report: a summary line, one aligned row per candidate (in discovery order),
    then notes (soft failures) and the error. Subjects and notes come from peers (certificates, DNS, LDAP),
    so they are escaped (:func:`direct.text.shown`) before they reach a terminal."""
    usable = sum(1 for c in result.candidates if c.usable)
    if result.candidates:
        summary = f"{usable} of {len(result.candidates)} certificate(s) usable"
    else:
        summary = "no certificate found"
    lines = [f"{shown(result.address)} - {summary} (policy: {policy})"]
    if result.candidates:
        rows = [_COLUMNS]
        for c in result.candidates:
            if c.usable:
                verdict = "trusted" if c.trusted else "not anchored (public)"
            else:
                verdict = c.reason or "unusable"
            rows.append(
                (
                    "SELECTED" if c in result.selected else "unusable",
                    c.source,
                    c.binding,
                    f"{c.cert.not_valid_after_utc:%Y-%m-%d}",
                    verdict,
                    sha256_hex(c.cert)[:16],
                    shown(subject_text(c.cert), 120),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
        lines.append("")
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append("  " + "  ".join([*cells, row[-1]]).rstrip())
    if result.warnings:
        lines += ["", "notes:"] + [f"  {shown(w, 300)}" for w in result.warnings]
    if result.error:
        lines += ["", f"error: {result.error.code}: {shown(result.error.message, 300)}"]
    return "\n".join(lines)


# --- publish ---------------------------------------------------------------------------------------------
def cert_record(cert: x509.Certificate, ttl: int = 300) -> list[str]:
    """BIND zone lines publishing ``cert`` as CERT type PKIX at its address- or domain-bound name
    (Certificate Discovery IG; RFC 4398 §2.1; DCDT hosting processes only PKIX records, direct.md DISC-10)."""
    b64 = base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
    chunks = " ".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    lines = []
    for owner in _owners(cert):
        lines.append(f"; {shown(subject_text(cert))} sha256={sha256_hex(cert)}")
        lines.append(f"{owner}. {ttl} IN CERT PKIX 0 0 ( {chunks} )")
    return lines


def _bindings(cert: x509.Certificate, skipped: list[str] | None = None) -> list[tuple[str, str]]:
    """The certificate's SAN names that are valid Direct addresses / host names, as ("address", addr) and
    ("domain", name). Anything else (wildcards, control characters, garbage) would be written verbatim into
    a zone file or LDIF, so it is skipped (and named, escaped, in ``skipped``)."""
    out: list[tuple[str, str]] = []
    for kind, names in (("address", rfc822_names(cert)), ("domain", dns_names(cert))):
        for name in names:
            try:
                value = str(DirectAddress.parse(name)) if kind == "address" else parse_domain(name)
            except AddressError:
                if skipped is not None:
                    skipped.append(shown(name))
                continue
            out.append((kind, value))
    return out


def _owners(cert: x509.Certificate) -> list[str]:
    return [DirectAddress.parse(v).dns_name if k == "address" else v for k, v in _bindings(cert)]


def ldif_entries(cert: x509.Certificate, base_dn: str) -> list[str]:
    """LDIF entries (inetOrgPerson, ``mail``, ``userCertificate;binary``) for each binding of ``cert``."""
    from ldap3.utils.dn import escape_rdn

    b64 = base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
    out = []
    for _kind, mail in _bindings(cert):
        out.append(
            f"dn: cn={escape_rdn(mail)},{base_dn}\n"
            "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n"
            f"objectClass: inetOrgPerson\ncn: {mail}\nsn: {mail}\nmail: {mail}\n"
            f"userCertificate;binary:: {b64}\n"
        )
    return out


@click.command(cls=_Command)
@existing_files(
    "--cert",
    "cert_files",
    required=True,
    help="Our certificate file (PEM/DER/PKCS#7; repeatable). Private keys are never read.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["bind", "ldif", "both"]), default="both", show_default=True
)
@click.option("--ttl", type=int, default=300, show_default=True, help="TTL of the CERT records.")
@click.option("--ldap-base", default="ou=direct", show_default=True, help="Base DN of the LDIF entries.")
@click.option("--ldap-host", default=None, help="Also emit _ldap._tcp SRV records pointing at this host.")
@click.option("--ldap-port", type=int, default=389, show_default=True)
def publish(
    cert_files: tuple[str, ...], fmt: str, ttl: int, ldap_base: str, ldap_host: str | None, ldap_port: int
) -> None:
    """Print BIND zone records (CERT PKIX) and LDIF that publish our certificates for discovery."""
    certs: list[x509.Certificate] = []
    for name in cert_files:
        try:
            certs.extend(load_certificates(Path(name).read_bytes()))
        except ValueError:
            click.echo(f"error: {Path(name).name} holds no certificate", err=True)
            sys.exit(EXIT_USAGE)
    if ldap_host is not None:
        try:
            ldap_host = parse_domain(ldap_host)
        except AddressError:
            click.echo("error: --ldap-host must be a host name", err=True)
            sys.exit(EXIT_USAGE)
    if has_control(ldap_base):
        click.echo("error: --ldap-base must be one line", err=True)
        sys.exit(EXIT_USAGE)
    skipped: list[str] = []
    for cert in certs:
        _bindings(cert, skipped)
    for name in skipped:
        click.echo(f"note: subjectAltName {name!r} skipped (not a Direct address or host name)", err=True)
    leaves = [c for c in certs if _owners(c)]
    if not leaves:
        click.echo("error: no certificate is bound to a Direct address or domain (subjectAltName)", err=True)
        sys.exit(EXIT_USAGE)
    if fmt in ("bind", "both"):
        click.echo("; --- BIND zone records (bbdirect publish) ---")
        for cert in leaves:
            for line in cert_record(cert, ttl):
                click.echo(line)
        if ldap_host:
            domains = sorted({d for c in leaves for d in _domains(c)})
            for domain in domains:
                click.echo(f"_ldap._tcp.{domain}. {ttl} IN SRV 0 0 {ldap_port} {ldap_host.rstrip('.')}.")
    if fmt in ("ldif", "both"):
        click.echo("# --- LDIF (bbdirect publish) ---")
        for cert in leaves:
            for entry in ldif_entries(cert, ldap_base):
                click.echo(entry)


def _domains(cert: x509.Certificate) -> list[str]:
    return [DirectAddress.parse(v).domain if k == "address" else v for k, v in _bindings(cert)]

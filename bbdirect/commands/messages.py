"""``bbdirect seal | unseal | send | receive``: Direct messages from the command line.

``seal`` and ``unseal`` are a fixed contract (issue 3; interop scripts and the Java RI harness drive them):
``seal`` writes one complete Direct message; ``unseal --json`` prints only the JSON report and exits 0 iff
the message was decrypted, validly signed by a trusted signer and passed every check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from direct.errors import DirectError
from direct.message import Attachment, build_message, is_xdm, safe_filename, unpack_xdm
from direct.smime import Identity, SealOptions, load_certificate_files
from direct.smime import seal as seal_message
from direct.smime import unseal as unseal_message
from direct.smime.envelope import CIPHERS, KEY_TRANSPORTS
from direct.smime.identity import end_entities

_DIGESTS = ("sha256", "sha384", "sha512")


def _fail(exc: DirectError) -> None:
    click.echo(f"error [{exc.code}]: {exc.message}", err=True)
    sys.exit(2)


def _seal_options(cipher: str, key_transport: str, digest: str) -> SealOptions:
    return SealOptions(cipher=cipher, key_transport=key_transport, digest=digest)


_algo_options = [
    click.option(
        "--cipher",
        type=click.Choice(sorted(CIPHERS)),
        default="aes256-cbc",
        show_default=True,
        help="Content encryption (GCM only for peers known to read AuthEnvelopedData).",
    ),
    click.option(
        "--key-transport",
        type=click.Choice(KEY_TRANSPORTS),
        default="rsa",
        show_default=True,
        help="rsa = PKCS#1 v1.5; rsa-oaep = OAEP SHA-1 defaults; rsa-oaep-sha256 = OAEP SHA-256.",
    ),
    click.option("--digest", type=click.Choice(_DIGESTS), default="sha256", show_default=True),
]


def _with(options):
    def deco(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return deco


@click.command()
@click.option("--from", "from_addr", required=True, help="Sender Direct address (also the signer).")
@click.option("--to", "to_addrs", required=True, multiple=True, help="Recipient Direct address (repeatable).")
@click.option(
    "--sign-cert",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Signer certificate PEM (leaf first, then intermediates).",
)
@click.option("--sign-key", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--recipient-cert",
    "recipient_certs",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Recipient certificate PEM (repeatable).",
)
@click.option("--subject", default="Health information", show_default=True)
@click.option("--text", default="Please find the attached health information.", show_default=True)
@click.option("--attach", "attach", multiple=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--xdm", is_flag=True, help="Package the attachments as one XDM zip (IHE XDM).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@_with(_algo_options)
def seal(
    from_addr,
    to_addrs,
    sign_cert,
    sign_key,
    recipient_certs,
    subject,
    text,
    attach,
    xdm,
    output,
    cipher,
    key_transport,
    digest,
) -> None:
    """Write one complete Direct message (signed, then encrypted to every recipient and to the sender)."""
    try:
        signer = Identity.load(sign_cert, sign_key)
        certs = end_entities(load_certificate_files(recipient_certs))
        attachments = [Attachment.from_file(p) for p in attach]
        if xdm and attachments:
            from direct.message import XDM_SUBJECT, build_xdm

            attachments = [
                Attachment("XDM.ZIP", "application/zip", build_xdm(attachments, from_addr, to_addrs[0]))
            ]
            if XDM_SUBJECT not in subject:
                subject = f"{XDM_SUBJECT} {subject}"
        inner = build_message(from_addr, list(to_addrs), subject, text, attachments)
        raw = seal_message(inner, signer, certs, _seal_options(cipher, key_transport, digest))
    except DirectError as exc:
        _fail(exc)
        return
    if output:
        Path(output).write_bytes(raw)
    else:
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()


def _extract(result, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for att in result.attachments:
        target = directory / safe_filename(att.filename)
        target.write_bytes(att.data)
        if is_xdm(att):
            sub = directory / (safe_filename(att.filename).rsplit(".", 1)[0] + "_xdm")
            sub.mkdir(exist_ok=True)
            for doc in unpack_xdm(att.data):
                (sub / safe_filename(doc.filename)).write_bytes(doc.data)


@click.command()
@click.argument("message", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--cert",
    "certs",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Our certificate PEM (repeatable; pairs with --key in order).",
)
@click.option("--key", "keys", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Trust anchor PEM for the signer (repeatable).",
)
@click.option("--extract", type=click.Path(file_okay=False), help="Write the attachments to this folder.")
@click.option("--mail-from", default=None, help="SMTP MAIL FROM, to apply the routing-tamper check.")
@click.option("--rcpt-to", "rcpt_tos", multiple=True, help="SMTP RCPT TO (repeatable), for the same check.")
@click.option("--accept-sha1", is_flag=True, help="Accept SHA-1 signatures (legacy AS 1.2 peers).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report only.")
def unseal(message, certs, keys, anchors, extract, mail_from, rcpt_tos, accept_sha1, as_json) -> None:
    """Decrypt and verify a Direct message; exit 0 iff it is OK."""
    if len(certs) != len(keys):
        raise click.UsageError("give one --key per --cert")
    try:
        identities = [Identity.load(c, k) for c, k in zip(certs, keys, strict=True)]
        anchor_certs = load_certificate_files(anchors)
    except DirectError as exc:
        _fail(exc)
        return
    raw = Path(message).read_bytes() if message else sys.stdin.buffer.read()
    result = unseal_message(
        raw,
        identities,
        anchor_certs,
        mail_from=mail_from,
        rcpt_tos=list(rcpt_tos) or None,
        accept_sha1=accept_sha1,
    )
    if extract and result.decrypted and result.message is not None:
        _extract(result, Path(extract))
    report = result.to_json()
    if as_json:
        click.echo(json.dumps(report, sort_keys=False))
    else:
        state = "OK" if result.ok else f"REJECTED [{report['error']['code'] if report['error'] else '?'}]"
        click.echo(
            f"{state}: from={report['from']} to={','.join(report['to'])} signature={report['signature']}"
            f" wrapped={report['wrapped']}"
        )
        for att in report["attachments"]:
            click.echo(f"  {att['filename']} {att['content_type']} sha256={att['sha256']}")
    sys.exit(0 if result.ok else 1)

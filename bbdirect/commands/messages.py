"""``bbdirect seal | unseal | send | receive``: Direct messages from the command line.

``seal`` and ``unseal`` are a fixed contract (issue 3; interop scripts and the Java RI harness drive them):
``seal`` writes one complete Direct message; ``unseal --json`` prints only the JSON report and exits 0 iff
the message was decrypted, validly signed by a trusted signer and passed every check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click
from cryptography import x509

from direct.discovery.config import parse_hostport
from direct.errors import DirectError
from direct.files import private_dir, save_attachments, write_private
from direct.message import Attachment, build_message, pack_xdm, safe_filename
from direct.smime import Identity, SealOptions, load_certificate_files
from direct.smime import seal as seal_message
from direct.smime import unseal as unseal_message
from direct.smime.envelope import CIPHERS, KEY_TRANSPORTS
from direct.smime.identity import end_entities
from direct.text import shown

from .options import EXISTING_FILE, existing_files, trust_policy_option, with_options

_DIGESTS = ("sha256", "sha384", "sha512")


def _fail(exc: DirectError) -> NoReturn:
    click.echo(f"error [{exc.code}]: {exc.message}", err=True)
    sys.exit(2)


def _our_identities(
    certs: tuple[str, ...], keys: tuple[str, ...], anchors: tuple[str, ...]
) -> tuple[list[Identity], list[x509.Certificate]]:
    """Our --cert/--key pairs (matched in order) and the --anchor certificates, as ``unseal`` and
    ``receive`` both read them: a count mismatch is a usage error, an unreadable file ends the command
    with its Direct error code."""
    if len(certs) != len(keys):
        raise click.UsageError("give one --key per --cert")
    try:
        identities = [Identity.load(c, k) for c, k in zip(certs, keys, strict=True)]
        return identities, load_certificate_files(anchors)
    except DirectError as exc:
        _fail(exc)


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


@click.command()
@click.option("--from", "from_addr", required=True, help="Sender Direct address (also the signer).")
@click.option("--to", "to_addrs", required=True, multiple=True, help="Recipient Direct address (repeatable).")
@click.option(
    "--sign-cert",
    required=True,
    type=EXISTING_FILE,
    help="Signer certificate PEM (leaf first, then intermediates).",
)
@click.option("--sign-key", required=True, type=EXISTING_FILE)
@existing_files(
    "--recipient-cert", "recipient_certs", required=True, help="Recipient certificate PEM (repeatable)."
)
@click.option("--subject", default="Health information", show_default=True)
@click.option("--text", default="Please find the attached health information.", show_default=True)
@click.option("--attach", "attach", multiple=True, type=EXISTING_FILE)
@click.option("--xdm", is_flag=True, help="Package the attachments as one XDM zip (IHE XDM).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@with_options(_algo_options)
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
        if xdm:
            attachments, subject = pack_xdm(attachments, from_addr, to_addrs[0], subject)
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
    # notes go to stderr so that stdout stays pure JSON
    save_attachments(
        directory,
        result.attachments,
        lambda name, code: click.echo(f"note: {shown(name)} not unpacked ({code})", err=True),
    )


def _quarantine(result, directory: Path) -> int:
    """The rejected message's attachments as received (owner-only files): never unpacked, since an XDM zip
    from an unauthenticated sender is exactly what must not be opened. Returns how many were written."""
    private_dir(directory)
    for att in result.attachments:
        write_private(directory / safe_filename(att.filename), att.data)
    return len(result.attachments)


def _write_attachments(result, extract: str | None, quarantine: str | None) -> None:
    """``--extract`` only for a message that decrypted, verified and chained to a trusted anchor: the
    sender's certificate MUST chain to a configured trust anchor (Applicability Statement 1.2 §4.2; direct.md
    CERT-5, ALG-1: every Direct message is signed), and ETT's untrusted/unsigned cases must be rejected, not
    processed (EDGE-2). Anything else is written only to the explicit ``--quarantine`` folder, as received;
    the reason goes to stderr (stdout may be the JSON report)."""
    if result.ok:
        if extract:
            _extract(result, Path(extract))
        return
    code = result.error.code if result.error else "rejected"
    why = f"message rejected [{code}]: {result.error.message if result.error else 'not verified'}"
    if quarantine and result.decrypted and result.message is not None:
        count = _quarantine(result, Path(quarantine))
        click.echo(f"quarantined {count} attachment(s) into {shown(quarantine)}: {why}", err=True)
    elif extract or quarantine:
        click.echo(f"not extracted: {why}", err=True)


@click.command()
@click.argument("message", required=False, type=EXISTING_FILE)
@existing_files(
    "--cert", "certs", required=True, help="Our certificate PEM (repeatable; pairs with --key in order)."
)
@existing_files("--key", "keys", required=True)
@existing_files("--anchor", "anchors", help="Trust anchor PEM for the signer (repeatable).")
@click.option(
    "--extract",
    type=click.Path(file_okay=False),
    help="Write the attachments (XDM unpacked) here; only for a decrypted, verified, trusted message.",
)
@click.option(
    "--quarantine",
    type=click.Path(file_okay=False),
    help="Write a rejected (unsigned, untrusted...) message's attachments here, as received, not unpacked.",
)
@click.option("--mail-from", default=None, help="SMTP MAIL FROM, to apply the routing-tamper check.")
@click.option("--rcpt-to", "rcpt_tos", multiple=True, help="SMTP RCPT TO (repeatable), for the same check.")
@click.option("--accept-sha1", is_flag=True, help="Accept SHA-1 signatures (legacy AS 1.2 peers).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report only.")
def unseal(
    message, certs, keys, anchors, extract, quarantine, mail_from, rcpt_tos, accept_sha1, as_json
) -> None:
    """Decrypt and verify a Direct message; exit 0 iff it is OK."""
    identities, anchor_certs = _our_identities(certs, keys, anchors)
    raw = Path(message).read_bytes() if message else sys.stdin.buffer.read()
    result = unseal_message(
        raw,
        identities,
        anchor_certs,
        mail_from=mail_from,
        rcpt_tos=list(rcpt_tos) or None,
        accept_sha1=accept_sha1,
    )
    _write_attachments(result, extract, quarantine)
    report = result.to_json()
    if as_json:
        click.echo(json.dumps(report, sort_keys=False))
    else:
        state = "OK" if result.ok else f"REJECTED [{report['error']['code'] if report['error'] else '?'}]"
        # addresses, file names and types come from the (possibly hostile) message: escaped for the terminal
        click.echo(
            f"{state}: from={shown(str(report['from']))} to={shown(','.join(report['to']))}"
            f" signature={report['signature']} wrapped={report['wrapped']}"
        )
        for att in report["attachments"]:
            click.echo(f"  {shown(att['filename'])} {shown(att['content_type'])} sha256={att['sha256']}")
    sys.exit(0 if result.ok else 1)


# --- send / receive --------------------------------------------------------------------------------------
def _hostport(text: str) -> tuple[str, int]:
    try:
        return parse_hostport(text)
    except ValueError as exc:
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}") from exc


_smtp_options = [
    click.option("--smtp-host", help="Smarthost; without it, the recipient domain's MX is used."),
    click.option("--smtp-port", type=int, default=25, show_default=True),
    click.option(
        "--starttls",
        type=click.Choice(["require", "opportunistic", "off"]),
        default="opportunistic",
        show_default=True,
    ),
    click.option("--smtp-user", help="AUTH user (password from $BBDIRECT_SMTP_PASSWORD)."),
]


def _target(smtp_host, smtp_port, starttls, smtp_user):
    import os

    from direct.transport import SmtpTarget

    return SmtpTarget(
        host=smtp_host,
        port=smtp_port,
        starttls=starttls,
        username=smtp_user,
        password=os.environ.get("BBDIRECT_SMTP_PASSWORD"),
        timeout=60,
    )


def _resolver(nameservers, anchors):
    from direct.discovery.config import DiscoveryConfig
    from direct.discovery.resolver import CertificateResolver

    return CertificateResolver(DiscoveryConfig.from_strings(nameservers, anchors=anchors))


@click.command()
@click.option("--from", "from_addr", required=True)
@click.option("--to", "to_addrs", required=True, multiple=True)
@click.option("--sign-cert", required=True, type=EXISTING_FILE)
@click.option("--sign-key", required=True, type=EXISTING_FILE)
@existing_files(
    "--recipient-cert",
    "recipient_certs",
    help="Recipient certificate PEM; without it certificates are discovered (DNS CERT / LDAP).",
)
@existing_files(
    "--anchor", "anchors", help="Trust anchor PEM (recipient discovery and incoming MDN signers)."
)
@click.option("--nameserver", "nameservers", multiple=True, help="DNS server HOST[:PORT] for discovery.")
@trust_policy_option("public = patient-directed: no anchor needed for the recipient (TRUST-7).")
@click.option("--subject", default="Health information", show_default=True)
@click.option("--text", default="Please find the attached health information.", show_default=True)
@click.option("--attach", "attach", multiple=True, type=EXISTING_FILE)
@click.option("--xdm", is_flag=True)
@with_options(_smtp_options)
@with_options(_algo_options)
@click.option("--wait", is_flag=True, help="Wait for the MDNs (needs --listen).")
@click.option("--listen", help="HOST:PORT where MDNs for --wait arrive.")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds to wait for MDNs.")
@click.option("--json", "as_json", is_flag=True)
def send(
    from_addr,
    to_addrs,
    sign_cert,
    sign_key,
    recipient_certs,
    anchors,
    nameservers,
    policy,
    subject,
    text,
    attach,
    xdm,
    smtp_host,
    smtp_port,
    starttls,
    smtp_user,
    cipher,
    key_transport,
    digest,
    wait,
    listen,
    timeout,
    as_json,
) -> None:
    """Seal and deliver a Direct message over SMTP; print its Message-ID and delivery state."""
    import datetime as dt
    import threading

    from direct.agent import DirectAgent, receiving_endpoint
    from direct.mdn import DeliveryTracker
    from direct.trust.policy import TrustPolicy

    if wait and not listen:
        raise click.UsageError("--wait needs --listen HOST:PORT for the returning MDNs")
    try:
        signer = Identity.load(sign_cert, sign_key)
        anchor_certs = load_certificate_files(anchors)
        certs = end_entities(load_certificate_files(recipient_certs)) or None
        resolver = _resolver(nameservers, anchor_certs) if certs is None else None
        window = dt.timedelta(seconds=timeout)
        agent = DirectAgent(
            [signer],
            anchor_certs,
            resolver,
            _target(smtp_host, smtp_port, starttls, smtp_user),
            options=_seal_options(cipher, key_transport, digest),
            tracker=DeliveryTracker(window, window),
        )
        attachments = [Attachment.from_file(p) for p in attach]
        changed = threading.Event()
        endpoint = None
        if wait:
            import tempfile

            host, port = _hostport(listen)
            endpoint = receiving_endpoint(
                host,
                port,
                agent,
                tempfile.mkdtemp(prefix="bbdirect-mdn-"),
                on_message=lambda _r: changed.set(),
            ).start()
        try:
            receipt = agent.send(
                from_addr,
                list(to_addrs),
                subject,
                text,
                attachments,
                recipient_certs=certs,
                policy=TrustPolicy(policy),
                xdm=xdm,
            )
            tracked = agent.tracker.get(receipt.message_id)
            deadline = dt.datetime.now(dt.UTC) + window
            while wait and tracked is not None and not tracked.done:
                changed.wait(1.0)
                changed.clear()
                now = dt.datetime.now(dt.UTC)
                if now >= deadline:
                    agent.tracker.expire(now + dt.timedelta(seconds=1))
        finally:
            if endpoint is not None:
                endpoint.stop()
    except DirectError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "error": exc.to_dict()}))
            sys.exit(1)
        _fail(exc)
        return
    states = {a: r.state.value for a, r in tracked.recipients.items()} if tracked else {}
    reasons = {a: r.reason for a, r in tracked.recipients.items() if r.reason} if tracked else {}
    ok = all(s in {"sent", "processed", "dispatched"} for s in states.values())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": ok,
                    "message_id": receipt.message_id,
                    "recipients": receipt.recipients,
                    "trusted": receipt.trusted,
                    "state": states,
                    "reasons": reasons,
                    "error": None,
                }
            )
        )
    else:
        click.echo(f"Message-ID: {receipt.message_id}")
        for addr, state in states.items():
            click.echo(f"  {addr}: {state}{' (' + reasons[addr] + ')' if addr in reasons else ''}")
    sys.exit(0 if ok else 1)


@click.command()
@click.option("--listen", required=True, help="HOST:PORT to accept Direct messages on.")
@existing_files("--cert", "certs", required=True)
@existing_files("--key", "keys", required=True)
@existing_files("--anchor", "anchors")
@click.option("--inbox", required=True, type=click.Path(file_okay=False), help="Where accepted messages go.")
@click.option(
    "--nameserver", "nameservers", multiple=True, help="DNS server for finding MDN recipients' certs."
)
@click.option("--max-size", type=int, default=25 * 2**20, show_default=True, help="SMTP size limit (bytes).")
@click.option("--count", type=int, default=0, help="Exit after this many messages (0 = run until Ctrl-C).")
@click.option("--accept-sha1", is_flag=True)
@with_options(_smtp_options)
def receive(
    listen,
    certs,
    keys,
    anchors,
    inbox,
    nameservers,
    max_size,
    count,
    accept_sha1,
    smtp_host,
    smtp_port,
    starttls,
    smtp_user,
) -> None:
    """Run an SMTP endpoint: unseal inbound messages into --inbox and answer MDNs (one JSON line each)."""
    import threading

    from direct.agent import DirectAgent, receiving_endpoint

    identities, anchor_certs = _our_identities(certs, keys, anchors)
    resolver = _resolver(nameservers, anchor_certs) if nameservers else None
    agent = DirectAgent(
        identities,
        anchor_certs,
        resolver,
        _target(smtp_host, smtp_port, starttls, smtp_user),
        accept_sha1=accept_sha1,
    )
    seen = threading.Semaphore(0)
    lock = threading.Lock()

    def report(result) -> None:
        line = result.unsealed.to_json()
        line["mdns_sent"] = result.mdns_sent
        line["notifications"] = [n.__dict__ for n in result.notifications]
        with lock:
            click.echo(json.dumps(line))
        seen.release()

    host, port = _hostport(listen)
    endpoint = receiving_endpoint(host, port, agent, inbox, data_size_limit=max_size, on_message=report)
    endpoint.start()
    click.echo(f"listening on {host}:{endpoint.port}", err=True)
    try:
        if count:
            for _ in range(count):
                seen.acquire()
            # on_message runs just before the SMTP reply is written: give the last reply time to leave.
            threading.Event().wait(1.0)
        else:
            threading.Event().wait()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    finally:
        endpoint.stop()

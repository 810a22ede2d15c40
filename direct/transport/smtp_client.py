"""SMTP delivery of sealed Direct messages: recipient MX (dnspython) or a configured smarthost.

Errors are classified the way retry logic needs them (issue 3, MSG-11): any 4xx reply, a dropped connection
or a timeout is a :class:`TransientDeliveryError` (try again later, with :func:`backoff_delays`); any 5xx
reply is a :class:`PermanentDeliveryError` that keeps the server's own text in ``detail``. A message larger
than the SIZE the server advertises (RFC 1870) is refused before DATA. Envelope sender = From and
recipients = To/Cc are the caller's duty (MSG-5); this module never adds recipients.
"""

from __future__ import annotations

import random
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.resolver

from direct.errors import DirectError, PermanentDeliveryError, TransientDeliveryError
from direct.sockets import shutdown_after


@dataclass
class SmtpTarget:
    """Where and how to deliver. ``host=None`` means: look up the recipient domain's MX records."""

    host: str | None = None
    port: int = 25
    #: "require" (fail without TLS), "opportunistic" (use when offered), or "off".
    starttls: str = "opportunistic"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    #: Whole SMTP session per host (connect to QUIT). ``timeout`` bounds each read only, so a server that
    #: trickles its replies would hold a worker for ever; RFC 5321 §4.5.3.2 allows 10 min for DATA's end.
    deadline: float = 900.0
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)
    helo: str | None = None
    resolver: dns.resolver.Resolver | None = field(default=None, repr=False)
    #: Send AUTH credentials over a connection without TLS. Off: a smarthost that does not offer STARTTLS
    #: must not receive our password in the clear (opt in only for a loopback/trusted-network relay).
    allow_plaintext_auth: bool = False


@dataclass
class DeliveryReceipt:
    """What the accepting server(s) said."""

    accepted: list[str]
    refused: dict[str, str]
    hosts: list[str]
    reply: str
    tls: bool


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _classify(code: int, message: bytes | str, where: str) -> Exception:
    # RFC 5321 §4.2.1: 4yz = transient negative completion (retry), 5yz = permanent negative completion.
    detail = f"{code} {_text(message)}".strip()
    if 400 <= code < 500:
        return TransientDeliveryError(f"the server deferred the message at {where}", detail=detail)
    return PermanentDeliveryError(f"the server refused the message at {where}", detail=detail)


def mx_hosts(domain: str, resolver: dns.resolver.Resolver | None = None) -> list[str]:
    """MX targets by preference; the domain itself when it has no MX (RFC 5321 §5.1); null MX refuses."""
    resolver = resolver or dns.resolver.get_default_resolver()
    try:
        answer = resolver.resolve(domain, "MX")
    except dns.resolver.NXDOMAIN as exc:
        raise PermanentDeliveryError(
            f"the recipient domain {domain} does not exist", detail="NXDOMAIN"
        ) from exc
    except dns.resolver.NoAnswer:
        return [domain]
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise TransientDeliveryError(f"MX lookup for {domain} failed", detail=type(exc).__name__) from exc
    records = sorted(answer, key=lambda r: r.preference)
    hosts = [r.exchange.to_text(omit_final_dot=True) for r in records]
    if hosts in ([""], ["."]) or (len(records) == 1 and records[0].exchange.to_text() == "."):
        raise PermanentDeliveryError(f"{domain} accepts no mail (null MX, RFC 7505)")
    return hosts


def _address_of(host: str, resolver: dns.resolver.Resolver | None) -> str:
    """With a configured resolver, MX targets are resolved through it too (not the system resolver)."""
    if resolver is None:
        return host
    try:
        return resolver.resolve(host, "A")[0].to_text()
    except dns.resolver.NXDOMAIN as exc:
        raise PermanentDeliveryError(f"mail host {host} does not exist", detail="NXDOMAIN") from exc
    except dns.exception.DNSException as exc:
        raise TransientDeliveryError(f"cannot resolve mail host {host}", detail=type(exc).__name__) from exc


def _send_one(
    raw: bytes,
    mail_from: str,
    rcpts: Sequence[str],
    host: str,
    target: SmtpTarget,
    connect_to: str | None = None,
) -> DeliveryReceipt:
    client = smtplib.SMTP(local_hostname=target.helo, timeout=target.timeout)
    timer = shutdown_after(target.deadline, lambda: getattr(client, "sock", None))
    try:
        return _converse(client, raw, mail_from, rcpts, host, target, connect_to)
    except DirectError as exc:
        # whatever the cut-off socket made smtplib believe, this is a timeout
        if timer.expired.is_set():  # type: ignore[attr-defined]
            raise TransientDeliveryError(
                f"{host} did not finish the SMTP session in {target.deadline}s", detail="session deadline"
            ) from exc
        raise
    finally:
        timer.cancel()


def _converse(
    client: smtplib.SMTP,
    raw: bytes,
    mail_from: str,
    rcpts: Sequence[str],
    host: str,
    target: SmtpTarget,
    connect_to: str | None,
) -> DeliveryReceipt:
    try:
        code, greeting = client.connect(connect_to or host, target.port)
        if code != 220:
            raise _classify(code, greeting, "connect")
        # TLS server-name checks and SNI must use the MX name even when we connected to its address.
        client._host = host
    except smtplib.SMTPConnectError as exc:
        raise _classify(exc.smtp_code, exc.smtp_error, "connect") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientDeliveryError(
            f"cannot connect to {host}:{target.port}", detail=type(exc).__name__
        ) from exc
    tls = False
    try:
        client.ehlo()
        if target.starttls != "off" and client.has_extn("starttls"):
            client.starttls(context=target.tls_context or ssl.create_default_context())
            client.ehlo()
            tls = True
        elif target.starttls == "require":
            raise PermanentDeliveryError(f"{host} does not offer STARTTLS", detail="STARTTLS required")
        if target.username:
            if not tls and not target.allow_plaintext_auth:
                raise PermanentDeliveryError(
                    f"refusing to send SMTP credentials to {host} without TLS",
                    detail="AUTH needs STARTTLS (or allow_plaintext_auth)",
                )
            client.login(target.username, target.password or "")
        limit = int(client.esmtp_features.get("size", "0") or 0) if client.has_extn("size") else 0
        if limit and len(raw) > limit:
            # RFC 1870: do not send what the server already said it will not take.
            raise PermanentDeliveryError(
                "the message is larger than the server accepts",
                detail=f"552 message size {len(raw)} exceeds the advertised SIZE {limit}",
            )
        options = [f"SIZE={len(raw)}"] if client.has_extn("size") else []
        code, msg = client.mail(mail_from, options)
        if code != 250:
            raise _classify(code, msg, "MAIL FROM")
        refused: dict[str, tuple[int, bytes]] = {}
        for rcpt in rcpts:
            code, msg = client.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = (code, msg)
        if len(refused) == len(rcpts):
            client.rset()
            codes = [c for c, _ in refused.values()]
            worst = next(iter(refused.values()))
            # All refused: transient if any refusal was 4xx (a retry may get them through).
            raise _classify(min(codes) if any(c < 500 for c in codes) else worst[0], worst[1], "RCPT TO")
        code, msg = client.data(raw)
        if code != 250:
            raise _classify(code, msg, "DATA")
        reply = f"{code} {_text(msg)}"
    except smtplib.SMTPDataError as exc:
        raise _classify(exc.smtp_code, exc.smtp_error, "DATA") from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise _classify(exc.smtp_code, exc.smtp_error, "AUTH") from exc
    except smtplib.SMTPResponseException as exc:
        raise _classify(exc.smtp_code, exc.smtp_error, "SMTP") from exc
    except (ssl.SSLError, smtplib.SMTPNotSupportedError) as exc:
        raise PermanentDeliveryError(
            f"TLS/AUTH negotiation with {host} failed", detail=type(exc).__name__
        ) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientDeliveryError(f"connection to {host} failed", detail=type(exc).__name__) from exc
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    refused_text = {r: f"{c} {_text(m)}" for r, (c, m) in refused.items()}
    accepted = [r for r in rcpts if r not in refused]
    return DeliveryReceipt(accepted, refused_text, [host], reply, tls)


def deliver(
    raw: bytes, mail_from: str, rcpt_to: Sequence[str], target: SmtpTarget | None = None
) -> DeliveryReceipt:
    """Deliver ``raw`` once. Smarthost when ``target.host`` is set, else each recipient domain's MX in order.

    With MX routing a transient failure at one MX moves on to the next; the last error is raised if all fail.
    """
    target = target or SmtpTarget()
    if not rcpt_to:
        raise PermanentDeliveryError("no recipients")
    if target.host:
        return _send_one(raw, mail_from, rcpt_to, target.host, target)
    by_domain: dict[str, list[str]] = {}
    for rcpt in rcpt_to:
        by_domain.setdefault(rcpt.rsplit("@", 1)[-1].lower(), []).append(rcpt)
    total = DeliveryReceipt([], {}, [], "", True)
    for domain, rcpts in by_domain.items():
        last: Exception | None = None
        for host in mx_hosts(domain, target.resolver):
            try:
                receipt = _send_one(raw, mail_from, rcpts, host, target, _address_of(host, target.resolver))
            except TransientDeliveryError as exc:
                last = exc
                continue
            total.accepted += receipt.accepted
            total.refused.update(receipt.refused)
            total.hosts += receipt.hosts
            total.reply = receipt.reply
            total.tls = total.tls and receipt.tls
            last = None
            break
        if last is not None:
            raise last
    return total


def backoff_delays(
    attempts: int = 6,
    base: float = 60.0,
    factor: float = 2.0,
    cap: float = 3600.0,
    jitter: float = 0.1,
    rng: Callable[[], float] = random.random,
) -> list[float]:
    """Seconds to wait before each retry: exponential, capped, +/- ``jitter`` spread (pure given ``rng``)."""
    out = []
    for i in range(attempts):
        delay = min(cap, base * factor**i)
        out.append(max(0.0, delay * (1 + jitter * (2 * rng() - 1))))
    return out


def deliver_with_retry(
    raw: bytes,
    mail_from: str,
    rcpt_to: Sequence[str],
    target: SmtpTarget | None = None,
    *,
    delays: Sequence[float] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReceipt:
    """:func:`deliver`, retrying transient failures after each of ``delays``; permanent ones raise at once."""
    delays = list(backoff_delays(3) if delays is None else delays)
    for wait in [*delays, None]:
        try:
            return deliver(raw, mail_from, rcpt_to, target)
        except TransientDeliveryError:
            if wait is None:
                raise
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover

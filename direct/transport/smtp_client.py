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
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
        address: str = resolver.resolve(host, "A")[0].to_text()
        return address
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
        if timer.expired.is_set():
            raise _deadline_error(host, target) from exc
        raise
    finally:
        timer.cancel()


def _deadline_error(host: str, target: SmtpTarget) -> TransientDeliveryError:
    return TransientDeliveryError(
        f"{host} did not finish the SMTP session in {target.deadline}s", detail="session deadline"
    )


def _converse(
    client: smtplib.SMTP,
    raw: bytes,
    mail_from: str,
    rcpts: Sequence[str],
    host: str,
    target: SmtpTarget,
    connect_to: str | None,
) -> DeliveryReceipt:
    """One session: connect, EHLO/STARTTLS/AUTH, one mail transaction, QUIT."""
    try:
        tls = _open(client, host, target, connect_to)
        return _transaction(client, raw, mail_from, rcpts, host, tls)
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def _open(client: smtplib.SMTP, host: str, target: SmtpTarget, connect_to: str | None) -> bool:
    """Connect and greet (EHLO, STARTTLS, AUTH); True when the session is under TLS."""
    try:
        code, greeting = client.connect(connect_to or host, target.port)
        if code != 220:
            raise _classify(code, greeting, "connect")
        # TLS server-name checks and SNI must use the MX name even when we connected to its address.
        client._host = host  # type: ignore[attr-defined]  # private smtplib attribute starttls() reads
    except smtplib.SMTPConnectError as exc:
        raise _classify(exc.smtp_code, exc.smtp_error, "connect") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientDeliveryError(
            f"cannot connect to {host}:{target.port}", detail=type(exc).__name__
        ) from exc
    tls = False
    with _mapped_errors(host):
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
    return tls


def _transaction(
    client: smtplib.SMTP,
    raw: bytes,
    mail_from: str,
    rcpts: Sequence[str],
    host: str,
    tls: bool,
    progress: dict[str, bool] | None = None,
) -> DeliveryReceipt:
    """One mail transaction (MAIL, RCPT..., DATA) on an open session. ``progress["data"]`` is set once DATA
    has been issued: from then on the server may have taken the message."""
    refused: dict[str, tuple[int, bytes]] = {}
    with _mapped_errors(host):
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
        if progress is not None:
            progress["data"] = True
        code, msg = client.data(raw)
        if code != 250:
            raise _classify(code, msg, "DATA")
        reply = f"{code} {_text(msg)}"
    refused_text = {r: f"{c} {_text(m)}" for r, (c, m) in refused.items()}
    accepted = [r for r in rcpts if r not in refused]
    return DeliveryReceipt(accepted, refused_text, [host], reply, tls)


@contextmanager
def _mapped_errors(host: str) -> Iterator[None]:
    """smtplib/socket failures as the Direct delivery errors (4xx and drops transient, 5xx permanent)."""
    try:
        yield
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


def deliver(
    raw: bytes,
    mail_from: str,
    rcpt_to: Sequence[str],
    target: SmtpTarget | None = None,
    *,
    pool: SmtpPool | None = None,
) -> DeliveryReceipt:
    """Deliver ``raw`` once. Smarthost when ``target.host`` is set, else each recipient domain's MX in order.

    With MX routing a transient failure at one MX moves on to the next; the last error is raised if all fail.
    With ``pool``, sessions are reused across calls (:class:`SmtpPool`); without, one session per call.
    """
    target = target or SmtpTarget()
    if not rcpt_to:
        raise PermanentDeliveryError("no recipients")
    send_one = pool.send if pool is not None else _send_one
    if target.host:
        return send_one(raw, mail_from, rcpt_to, target.host, target)
    by_domain: dict[str, list[str]] = {}
    for rcpt in rcpt_to:
        by_domain.setdefault(rcpt.rsplit("@", 1)[-1].lower(), []).append(rcpt)
    total = DeliveryReceipt([], {}, [], "", True)
    for domain, rcpts in by_domain.items():
        last: Exception | None = None
        for host in mx_hosts(domain, target.resolver):
            try:
                receipt = send_one(raw, mail_from, rcpts, host, target, _address_of(host, target.resolver))
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


class _Watchdog:
    """Session deadlines for pooled connections, kept by one daemon thread for the whole pool.

    Same effect as :func:`direct.sockets.shutdown_after` (a blocked read returns once its socket is shut
    down), without starting a timer thread per message: under load, starting a thread waits for the GIL.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._cond = threading.Condition()
        self._due: dict[int, tuple[float, smtplib.SMTP, threading.Event]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float, client: smtplib.SMTP) -> tuple[int, threading.Event]:
        expired = threading.Event()
        with self._cond:
            self._next += 1
            self._due[self._next] = (self._clock() + seconds, client, expired)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="smtp-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()
            return self._next, expired

    def cancel(self, token: int) -> None:
        with self._cond:
            self._due.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = self._clock()
                late = [t for t, (at, _, _) in self._due.items() if at <= now]
                expired = [self._due.pop(t) for t in late]
                if not expired:
                    soonest = min((at for at, _, _ in self._due.values()), default=None)
                    self._cond.wait(None if soonest is None else max(0.01, soonest - now))
                    continue
            for _, client, event in expired:
                event.set()
                sock = getattr(client, "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass


@dataclass
class _Session:
    client: smtplib.SMTP
    tls: bool
    messages: int = 0
    idle_since: float = 0.0


#: What makes two pooled sessions interchangeable: host, connect-to address, port and the TLS/auth settings.
_PoolKey = tuple[object, ...]


class SmtpPool:
    """Open SMTP sessions reused across messages: a burst to one server pays connect, EHLO, STARTTLS and
    AUTH once per connection instead of once per message (RFC 5321 §3.3 allows any number of mail
    transactions per session).

    * Sessions are keyed by everything that shapes them (host, address, port, TLS mode and context, HELO
      name, user), so a message never rides a session negotiated for another target.
    * A session is taken by one sender at a time (threads each get their own); at most ``max_idle`` per
      key are kept, each for at most ``idle_seconds`` idle and ``max_messages`` transactions, then QUIT.
    * A session that fails in any way is closed, never reused. When a *reused* session turns out dead before
      DATA was issued (the server dropped it while idle, or answers 421), the message goes out once on a
      fresh session: nothing was handed over yet. After DATA the usual classification applies.
    * ``target.deadline`` bounds each message (taking or opening a session to the end of DATA).
    """

    def __init__(
        self,
        *,
        max_idle: int = 4,
        idle_seconds: float = 10.0,
        max_messages: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self.max_messages = max_messages
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: dict[_PoolKey, list[_Session]] = {}
        self._watchdog = _Watchdog()
        #: Sessions opened so far (tests and benchmarks read it).
        self.opened = 0

    def send(
        self,
        raw: bytes,
        mail_from: str,
        rcpts: Sequence[str],
        host: str,
        target: SmtpTarget,
        connect_to: str | None = None,
    ) -> DeliveryReceipt:
        """One message to ``host`` on a pooled session (the contract of one :func:`deliver` hop)."""
        key = (
            host,
            connect_to,
            target.port,
            target.starttls,
            id(target.tls_context),
            target.helo,
            target.username,
            target.allow_plaintext_auth,
        )
        session = self._take(key)
        if session is not None:
            progress = {"data": False}
            try:
                return self._run(key, session, raw, mail_from, rcpts, host, target, progress)
            except TransientDeliveryError as exc:
                if progress["data"] or not _session_gone(exc):
                    raise
                # the idle session was gone (dropped, timed out, 421): nothing was handed over
        session = self._open(host, target, connect_to)
        return self._run(key, session, raw, mail_from, rcpts, host, target, None)

    def close(self) -> None:
        """QUIT every idle session."""
        with self._lock:
            idle = [s for sessions in self._idle.values() for s in sessions]
            self._idle.clear()
        for session in idle:
            _quit(session.client)

    def _open(self, host: str, target: SmtpTarget, connect_to: str | None) -> _Session:
        client = smtplib.SMTP(local_hostname=target.helo, timeout=target.timeout)
        token, expired = self._watchdog.watch(target.deadline, client)
        try:
            tls = _open(client, host, target, connect_to)
        except DirectError as exc:
            _quit(client)
            if expired.is_set():
                raise _deadline_error(host, target) from exc
            raise
        finally:
            self._watchdog.cancel(token)
        with self._lock:
            self.opened += 1
        return _Session(client, tls)

    def _run(
        self,
        key: _PoolKey,
        session: _Session,
        raw: bytes,
        mail_from: str,
        rcpts: Sequence[str],
        host: str,
        target: SmtpTarget,
        progress: dict[str, bool] | None,
    ) -> DeliveryReceipt:
        token, expired = self._watchdog.watch(target.deadline, session.client)
        try:
            receipt = _transaction(session.client, raw, mail_from, rcpts, host, session.tls, progress)
        except DirectError as exc:
            _quit(session.client)
            if expired.is_set():
                raise _deadline_error(host, target) from exc
            raise
        finally:
            self._watchdog.cancel(token)
        session.messages += 1
        self._give_back(key, session)
        return receipt

    def _take(self, key: _PoolKey) -> _Session | None:
        now = self._clock()
        stale: list[_Session] = []
        found = None
        with self._lock:
            sessions = self._idle.get(key, [])
            while sessions:
                session = sessions.pop()
                if now - session.idle_since <= self.idle_seconds:
                    found = session
                    break
                stale.append(session)
        for session in stale:
            _quit(session.client)
        return found

    def _give_back(self, key: _PoolKey, session: _Session) -> None:
        if session.messages < self.max_messages:
            session.idle_since = self._clock()
            with self._lock:
                sessions = self._idle.setdefault(key, [])
                if len(sessions) < self.max_idle:
                    sessions.append(session)
                    return
        _quit(session.client)


def _session_gone(exc: TransientDeliveryError) -> bool:
    """The failure says the session itself is unusable (a drop, or 421 "closing channel"), not that the
    server deferred this message (any other 4xx reply, which a fresh session would only hear again)."""
    detail = exc.detail or ""
    return not detail[:1].isdigit() or detail.startswith("421")


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()

"""The SMTP receiving endpoint (aiosmtpd) for inbound Direct messages and the MDNs answering ours.

The endpoint only moves bytes: it hands ``(mail_from, rcpt_tos, data)`` to a handler (usually
:meth:`direct.agent.DirectAgent.receive` via :func:`direct.agent.receiving_endpoint`) and maps the
handler's verdict to an SMTP reply - a :class:`~direct.errors.DirectError` that is transient becomes
``451``, any other becomes ``550`` with the stable error code (no PHI). The handler runs on the
endpoint's own bounded pool of worker threads (``workers``), never on the event loop nor on the loop's
shared default executor, so a slow unseal or an outgoing MDN never blocks the listener, even if the MDN is
addressed to this very endpoint.

Abuse limits (issue 12, finding 13): at most ``max_connections`` SMTP sessions at once - one more is
greeted with ``421 4.3.2`` (RFC 5321 §3.8, §4.2.3: a transient refusal, the client retries later) and
closed; messages above ``data_size_limit`` are refused by aiosmtpd with ``552`` (MSG-11; RFC 1870 SIZE).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from direct.errors import DirectError
from direct.text import one_line

log = logging.getLogger(__name__)

#: handler(mail_from, rcpt_tos, data) -> optional SMTP reply text ("250 ..."); raise DirectError to refuse.
#: A handler with a true ``wants_peer`` attribute is also given ``peer=`` (the SMTP client's IP address).
Handler = Callable[..., str | None]
#: MSG-11: the AS sets no Direct maximum; RFC 5321 §4.5.3.1.7 requires at least 64 KB; advertised as SIZE
#: (RFC 1870) and enforced by aiosmtpd with 552.
DEFAULT_SIZE_LIMIT = 25 * 2**20
#: Simultaneous SMTP sessions; one more gets ``421`` (finding 13).
DEFAULT_MAX_CONNECTIONS = 32
#: Worker threads unsealing (and answering) messages; further DATA waits for one.
DEFAULT_WORKERS = 4
TOO_MANY = "421 4.3.2 too many connections, try again later"


class _Gate:
    """Counts open sessions; thread-safe (the loop runs on the controller's thread)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.open -= 1


class _LimitedSMTP(SMTP):
    """aiosmtpd's SMTP session, refused with 421 before the greeting when the gate is full."""

    def __init__(self, handler: Any, gate: _Gate, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self._gate = gate

    async def _handle_client(self) -> None:
        if not self._gate.enter():
            log.warning("inbound SMTP: connection limit (%d) reached, answered 421", self._gate.limit)
            await self.push(TOO_MANY)
            if self.transport is not None:
                self.transport.close()
            return
        try:
            await super()._handle_client()
        finally:
            self._gate.leave()


class _Bridge:
    def __init__(self, handler: Handler, executor: ThreadPoolExecutor):
        self.handler = handler
        self.executor = executor
        self.wants_peer = bool(getattr(handler, "wants_peer", False))

    def _call(self, mail_from: str, rcpt_tos: list[str], data: bytes, peer: str | None) -> str | None:
        if self.wants_peer:
            return self.handler(mail_from, rcpt_tos, data, peer=peer)
        return self.handler(mail_from, rcpt_tos, data)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = bytes(envelope.original_content or envelope.content or b"")  # type: ignore[arg-type]  # decode_data off: bytes
        peer = session.peer[0] if isinstance(session.peer, tuple) and session.peer else None
        loop = asyncio.get_running_loop()
        try:
            reply = await loop.run_in_executor(
                self.executor, self._call, envelope.mail_from or "", list(envelope.rcpt_tos), data, peer
            )
        except DirectError as exc:
            log.info("inbound message refused: %s", exc.code)
            if exc.transient:
                return f"451 4.3.0 {exc.code}: try again later"
            if getattr(exc, "secret_dependent", False):
                # No padding/Bleichenbacher oracle: one reply for every verdict that depended on our
                # private key before a signature verified (see direct.smime.seal._secret_dependent).
                return "550 5.7.1 crypto_error: the message could not be decrypted and verified"
            return one_line(f"550 5.7.1 {exc.code}: {exc.message}")[:500]
        except Exception as exc:
            # Never log the exception text or traceback message: a parser failing on message content
            # carries that content (PHI) in its message. Type and location are enough to find the bug.
            log.error("inbound message handler failed: %s at %s", type(exc).__name__, _where(exc))
            return "451 4.3.0 internal error, try again later"
        return reply or "250 2.0.0 OK"


def _where(exc: BaseException) -> str:
    """``file:line in function`` of the innermost frame of ``exc`` (no values, no message)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


class _Controller(Controller):
    """aiosmtpd's Controller, able to listen on port 0: the kernel picks the port when the server binds
    (no probe-a-free-port-then-bind race), and ``port`` is read back before the start-up self-test; its
    sessions pass the connection gate."""

    def __init__(self, handler: Any, *, gate: _Gate, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self.gate = gate

    def factory(self) -> SMTP:
        return _LimitedSMTP(self.handler, self.gate, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = cast(asyncio.Server, self.server).sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated


class ReceivingEndpoint:
    """An SMTP listener on ``host:port`` (port 0 = pick a free one) feeding ``handler``.

    Optional STARTTLS (``tls_context``, ``require_starttls``) and AUTH (``authenticator`` as aiosmtpd defines
    it). Limits: ``data_size_limit`` bytes per message (552), ``max_connections`` sessions (421), ``workers``
    threads running the handler. Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        data_size_limit: int = DEFAULT_SIZE_LIMIT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        workers: int = DEFAULT_WORKERS,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        authenticator: Callable[..., Any] | None = None,
        server_hostname: str | None = None,
    ):
        kwargs: dict[str, Any] = {"data_size_limit": data_size_limit}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
        if authenticator is not None:
            kwargs.update(authenticator=authenticator, auth_required=True)
        if server_hostname:
            kwargs["server_hostname"] = server_hostname
        if max_connections < 1 or workers < 1:
            raise ValueError("max_connections and workers must be at least 1")
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smtp-inbound")
        self.gate = _Gate(max_connections)
        self.controller = _Controller(
            _Bridge(handler, self.executor), gate=self.gate, hostname=host, port=port, **kwargs
        )
        self.host = host

    @property
    def port(self) -> int:
        """The listening port (with port 0: the one the kernel chose, known once started)."""
        return self.controller.port

    def start(self) -> ReceivingEndpoint:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> ReceivingEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

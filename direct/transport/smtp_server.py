"""The SMTP receiving endpoint (aiosmtpd) for inbound Direct messages and the MDNs answering ours.

The endpoint only moves bytes: it hands ``(mail_from, rcpt_tos, data)`` to a handler (usually
:meth:`direct.agent.DirectAgent.receive` via :func:`direct.agent.receiving_endpoint`) and maps the
handler's verdict to an SMTP reply - a :class:`~direct.errors.DirectError` that is transient becomes
``451``, any other becomes ``550`` with the stable error code (no PHI). The handler runs on a worker
thread so a slow unseal or an outgoing MDN never blocks the event loop, even if the MDN is addressed to
this very endpoint. Messages above ``data_size_limit`` are refused by aiosmtpd with ``552`` (MSG-11).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import traceback
from collections.abc import Callable, Sequence

from aiosmtpd.controller import Controller

from direct.errors import DirectError
from direct.text import one_line

log = logging.getLogger(__name__)

#: handler(mail_from, rcpt_tos, data) -> optional SMTP reply text ("250 ..."); raise DirectError to refuse.
Handler = Callable[[str, Sequence[str], bytes], str | None]
#: MSG-11: the AS sets no Direct maximum; RFC 5321 §4.5.3.1.7 requires at least 64 KB; advertised as SIZE
#: (RFC 1870) and enforced by aiosmtpd with 552.
DEFAULT_SIZE_LIMIT = 25 * 2**20


class _Bridge:
    def __init__(self, handler: Handler):
        self.handler = handler

    async def handle_DATA(self, server, session, envelope) -> str:
        data = bytes(envelope.original_content or envelope.content or b"")
        loop = asyncio.get_running_loop()
        try:
            reply = await loop.run_in_executor(
                None, self.handler, envelope.mail_from or "", list(envelope.rcpt_tos), data
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
    (no probe-a-free-port-then-bind race), and ``port`` is read back before the start-up self-test."""

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class ReceivingEndpoint:
    """An SMTP listener on ``host:port`` (port 0 = pick a free one) feeding ``handler``.

    Optional STARTTLS (``tls_context``, ``require_starttls``) and AUTH (``authenticator`` as aiosmtpd defines
    it). Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        data_size_limit: int = DEFAULT_SIZE_LIMIT,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        authenticator: Callable | None = None,
        server_hostname: str | None = None,
    ):
        kwargs: dict = {"data_size_limit": data_size_limit}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
        if authenticator is not None:
            kwargs.update(authenticator=authenticator, auth_required=True)
        if server_hostname:
            kwargs["server_hostname"] = server_hostname
        self.controller = _Controller(_Bridge(handler), hostname=host, port=port, **kwargs)
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

    def __enter__(self) -> ReceivingEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

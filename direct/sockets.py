"""Whole-session deadlines for blocking client sockets (SMTP, LDAP).

Why: per-read timeouts (``timeout=``, ``receive_timeout=``) bound one ``recv`` only. A peer we did not choose
(the recipient domain's MX, an LDAP server named by its SRV records) can send one byte per read and hold a
worker for ever. Shutting the socket down from a timer makes the blocked read return at once, whatever the
client library is doing.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class DeadlineTimer(threading.Timer):
    """A timer whose ``expired`` Event tells afterwards whether the deadline fired."""

    expired: threading.Event


def shutdown_after(seconds: float, current_socket: Callable[[], socket.socket | None]) -> DeadlineTimer:
    """Start a daemon timer that shuts down ``current_socket()`` after ``seconds``; ``cancel()`` it when the
    session ends. ``timer.expired`` (an Event) tells afterwards whether the deadline fired."""
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = current_socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = DeadlineTimer(seconds, expire)
    timer.expired = expired
    timer.daemon = True
    timer.start()
    return timer

"""SMTP session reuse (``direct.transport.smtp_client.SmtpPool``) against a real aiosmtpd listener that
records which client connection carried each message."""

from __future__ import annotations

import socket
import threading
from collections import deque

import pytest
from aiosmtpd.controller import Controller

from direct.errors import TransientDeliveryError
from direct.transport import SmtpTarget, deliver
from direct.transport.smtp_client import SmtpPool
from tests.support.services import free_port

MSG = b"From: alice@a.example\r\nTo: bob@b.example\r\nSubject: t\r\n\r\nhello %d\r\n"


class PeerRecorder:
    """Accepts every message and notes the client connection (peer address) it came over."""

    def __init__(self) -> None:
        self.received: list[tuple[tuple[str, int], bytes]] = []
        self.replies: deque[str] = deque()
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self.lock:
            if self.replies:
                return self.replies.popleft()
            self.received.append((tuple(session.peer), bytes(envelope.original_content or b"")))
        return "250 2.0.0 OK"

    @property
    def peers(self) -> list[tuple[str, int]]:
        with self.lock:
            return [peer for peer, _ in self.received]


@pytest.fixture
def listener():  # type: ignore[no-untyped-def]
    handler = PeerRecorder()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port("127.0.0.1"))
    controller.start()
    yield controller, handler
    controller.stop()


def target_of(controller: Controller) -> SmtpTarget:
    return SmtpTarget(host=controller.hostname, port=controller.port, timeout=10, starttls="off")


def message(n: int) -> bytes:
    return MSG.replace(b"%d", str(n).encode())


def idle_sessions(pool: SmtpPool) -> list:
    return [s for sessions in pool._idle.values() for s in sessions]


def test_a_burst_rides_one_connection(listener) -> None:
    controller, handler = listener
    pool = SmtpPool()
    try:
        for n in range(5):
            receipt = deliver(
                message(n), "alice@a.example", ["bob@b.example"], target_of(controller), pool=pool
            )
            assert receipt.accepted == ["bob@b.example"]
    finally:
        pool.close()
    assert [data for _, data in handler.received] == [message(n) for n in range(5)]
    assert len(set(handler.peers)) == 1 and pool.opened == 1


def test_without_a_pool_each_message_has_its_own_connection(listener) -> None:
    controller, handler = listener
    for n in range(3):
        deliver(message(n), "alice@a.example", ["bob@b.example"], target_of(controller))
    assert len(set(handler.peers)) == 3


def test_a_session_dropped_while_idle_is_replaced_before_anything_is_sent(listener) -> None:
    controller, handler = listener
    pool = SmtpPool()
    target = target_of(controller)
    deliver(message(0), "alice@a.example", ["bob@b.example"], target, pool=pool)
    [idle] = idle_sessions(pool)
    idle.client.sock.shutdown(socket.SHUT_RDWR)  # the connection is gone under the pooled session
    deliver(message(1), "alice@a.example", ["bob@b.example"], target, pool=pool)
    pool.close()
    assert [data for _, data in handler.received] == [message(0), message(1)]
    assert pool.opened == 2 and len(set(handler.peers)) == 2


def test_a_deferral_at_data_is_reported_and_the_session_is_not_reused(listener) -> None:
    controller, handler = listener
    pool = SmtpPool()
    target = target_of(controller)
    deliver(message(0), "alice@a.example", ["bob@b.example"], target, pool=pool)
    handler.replies.append("451 4.3.0 busy")
    with pytest.raises(TransientDeliveryError) as err:
        deliver(message(1), "alice@a.example", ["bob@b.example"], target, pool=pool)
    assert err.value.detail.startswith("451")  # not silently re-sent on a fresh session
    assert idle_sessions(pool) == []
    deliver(message(2), "alice@a.example", ["bob@b.example"], target, pool=pool)
    pool.close()
    assert [data for _, data in handler.received] == [message(0), message(2)]
    assert pool.opened == 2


def test_idle_sessions_expire_and_sessions_retire_after_max_messages(listener) -> None:
    controller, handler = listener
    now = [0.0]
    pool = SmtpPool(idle_seconds=10.0, max_messages=2, clock=lambda: now[0])
    target = target_of(controller)
    deliver(message(0), "alice@a.example", ["bob@b.example"], target, pool=pool)
    now[0] = 10.5  # idle longer than allowed: QUIT, and a new session
    deliver(message(1), "alice@a.example", ["bob@b.example"], target, pool=pool)
    assert pool.opened == 2
    deliver(message(2), "alice@a.example", ["bob@b.example"], target, pool=pool)  # 2nd on this session
    assert idle_sessions(pool) == []  # retired after max_messages
    deliver(message(3), "alice@a.example", ["bob@b.example"], target, pool=pool)
    pool.close()
    assert pool.opened == 3 and len(handler.received) == 4


def test_sessions_are_not_shared_between_targets(listener) -> None:
    controller, handler = listener
    pool = SmtpPool()
    plain = target_of(controller)
    other_helo = SmtpTarget(
        host=controller.hostname, port=controller.port, timeout=10, starttls="off", helo="other.example"
    )
    deliver(message(0), "alice@a.example", ["bob@b.example"], plain, pool=pool)
    deliver(message(1), "alice@a.example", ["bob@b.example"], other_helo, pool=pool)
    deliver(message(2), "alice@a.example", ["bob@b.example"], plain, pool=pool)
    pool.close()
    assert pool.opened == 2
    assert handler.peers[0] == handler.peers[2] != handler.peers[1]


def test_a_stalling_server_is_cut_off_by_the_deadline_on_a_pooled_session() -> None:
    """The deadline holds for pooled sessions too (one watchdog thread instead of a timer per message)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while not stop.is_set():
                try:
                    conn.sendall(b"2")  # a greeting one byte at a time: never a whole reply
                except OSError:
                    return
                stop.wait(0.3)

    threading.Thread(target=serve, daemon=True).start()
    target = SmtpTarget(host="127.0.0.1", port=server.getsockname()[1], timeout=1, deadline=2)
    outcome: list[object] = []
    pool = SmtpPool()

    def attempt() -> None:
        try:
            deliver(message(0), "alice@a.example", ["bob@b.example"], target, pool=pool)
            outcome.append("delivered")
        except TransientDeliveryError as exc:
            outcome.append(exc.detail)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(20)
    stop.set()
    server.close()
    assert outcome == ["session deadline"]

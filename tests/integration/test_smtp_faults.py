"""The faulty receiving server of tests/fixtures/smtp.py (used by bench/fault_run.py), through a real SMTP
client: each switch does what the fault run counts it as doing, and nothing more.

A fault run that says "58 drops, 14 mid-DATA kills, 0 out of order" is only as good as these switches: a
"451" that was really accepted, or a "drop" that stored the message, would make the run's verdict wrong.
"""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.fixtures.smtp import FaultySink, start_faulty_sink

MESSAGE = b"From: a@x.test\r\nTo: b@y.test\r\nSubject: t\r\n\r\n" + b"line of the body\r\n" * 50


@pytest.fixture
def sink() -> Iterator[FaultySink]:
    server = start_faulty_sink()
    yield server
    server.controller.stop()


def send(sink: FaultySink) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.sendmail("a@x.test", ["b@y.test"], MESSAGE)


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition of the listener's thread (bounded; the assertion is on the state)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_no_switch_set_behaves_like_the_plain_sink(sink):
    send(sink)
    [message] = sink.messages
    assert message.data.endswith(b"line of the body\r\n") and sink.handler.data_started == 1


def test_451_stretch_refuses_every_data_and_stores_nothing(sink):
    sink.handler.answer_451 = True
    for _ in range(2):
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(sink)
        assert refused.value.smtp_code == 451
    assert sink.handler.answered_451 == 2 and sink.messages == []
    sink.handler.answer_451 = False
    send(sink)
    assert len(sink.messages) == 1


def test_drop_cuts_the_connection_mid_data_and_stores_nothing(sink):
    sink.handler.drop_next(1)
    with pytest.raises((smtplib.SMTPException, OSError)):
        send(sink)
    assert sink.handler.drops_done == 1 and sink.messages == []
    send(sink)  # only the next DATA was cut
    assert len(sink.messages) == 1 and sink.handler.drops_done == 1


def test_held_reply_signals_the_data_and_stores_only_after_release(sink):
    starts = threading.Event()
    sink.handler.on_data_start = starts.set
    sink.handler.hold_next(commit=False)
    sender = threading.Thread(target=send, args=(sink,))
    sender.start()
    assert sink.handler.held.wait(10) and starts.is_set()
    assert sink.messages == []  # the client waits for the reply to its DATA
    sink.handler.release()
    sender.join(10)
    assert len(sink.messages) == 1 and sink.handler.holds_lost == 0


@pytest.mark.parametrize("commit", [True, False])
def test_client_vanishing_while_held(sink, commit):
    """commit=True: the server stored the message before the client vanished; False: it did not."""
    client = smtplib.SMTP(sink.host, sink.port, timeout=10)
    client.ehlo()
    sink.handler.hold_next(commit=commit)
    failures: list[Exception] = []

    def attempt() -> None:
        try:
            client.sendmail("a@x.test", ["b@y.test"], MESSAGE)
        except (smtplib.SMTPException, OSError) as exc:
            failures.append(exc)

    sender = threading.Thread(target=attempt)
    sender.start()
    assert sink.handler.held.wait(10)
    assert sink.handler.held_peer[1] == client.sock.getsockname()[1]  # how the killer finds the process
    client.sock.shutdown(socket.SHUT_RDWR)  # the sending process dies mid-DATA
    sender.join(10)
    assert failures  # the sender never saw a reply
    until(lambda: sink.handler.holds_lost == 1)
    assert len(sink.messages) == (1 if commit else 0)

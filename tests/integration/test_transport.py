"""direct.transport against real SMTP peers on loopback: the aiosmtpd sink, our own ReceivingEndpoint (size
limit, STARTTLS, AUTH) and MX routing through a real BIND9."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading

import dns.resolver
import pytest
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from direct.errors import MalformedMessage, PermanentDeliveryError, TransientDeliveryError
from direct.transport import ReceivingEndpoint, SmtpTarget, backoff_delays, deliver, deliver_with_retry
from direct.transport.smtp_client import mx_hosts
from tests.support.services import free_port, wait_for_port

MSG = b"From: alice@a.example\r\nTo: bob@b.example\r\nSubject: t\r\n\r\nhello\r\n.leading dot\r\n"


class Inbox:
    def __init__(self, fail: Exception | None = None):
        self.items: list[tuple[str, list[str], bytes]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, mail_from, rcpt_tos, data):
        if self.fail:
            raise self.fail
        with self.lock:
            self.items.append((mail_from, list(rcpt_tos), data))
        return None


def sink_target(sink, **kw) -> SmtpTarget:
    return SmtpTarget(host=sink.host, port=sink.port, timeout=10, **kw)


def test_smarthost_delivery(smtp_sink):
    receipt = deliver(MSG, "alice@a.example", ["bob@b.example"], sink_target(smtp_sink))
    got = smtp_sink.wait_for(1)[0]
    assert (got.mail_from, got.rcpt_tos) == ("alice@a.example", ["bob@b.example"])
    assert got.data == MSG
    assert receipt.accepted == ["bob@b.example"] and receipt.reply.startswith("250")


def test_4xx_is_transient_5xx_permanent_with_server_text(smtp_sink):
    smtp_sink.fail_next("451 4.3.0 Mailbox busy, come back later")
    with pytest.raises(TransientDeliveryError) as err:
        deliver(MSG, "alice@a.example", ["bob@b.example"], sink_target(smtp_sink))
    assert err.value.transient and "451 4.3.0 Mailbox busy" in err.value.detail
    smtp_sink.fail_next("554 5.7.1 Policy rejection: unknown sender")
    with pytest.raises(PermanentDeliveryError) as err:
        deliver(MSG, "alice@a.example", ["bob@b.example"], sink_target(smtp_sink))
    assert (
        err.value.code == "delivery_refused"
        and "554 5.7.1 Policy rejection: unknown sender" in err.value.detail
    )


def test_retry_with_backoff(smtp_sink):
    sleeps: list[float] = []
    smtp_sink.fail_next("421 4.7.0 Try again", times=2)
    receipt = deliver_with_retry(
        MSG,
        "alice@a.example",
        ["bob@b.example"],
        sink_target(smtp_sink),
        delays=[1.0, 2.0, 4.0],
        sleep=sleeps.append,
    )
    assert receipt.accepted == ["bob@b.example"] and sleeps == [1.0, 2.0]
    smtp_sink.fail_next("450 4.2.1 Busy", times=3)
    with pytest.raises(TransientDeliveryError):
        deliver_with_retry(
            MSG,
            "alice@a.example",
            ["bob@b.example"],
            sink_target(smtp_sink),
            delays=[0.0, 0.0],
            sleep=sleeps.append,
        )
    sleeps.clear()
    smtp_sink.fail_next("550 5.1.1 No such user")
    with pytest.raises(PermanentDeliveryError):
        deliver_with_retry(
            MSG,
            "alice@a.example",
            ["bob@b.example"],
            sink_target(smtp_sink),
            delays=[0.0, 0.0],
            sleep=sleeps.append,
        )
    assert sleeps == []  # permanent errors are not retried


def test_backoff_delays_grow_and_cap():
    assert backoff_delays(5, base=10, factor=3, cap=100, jitter=0) == [10, 30, 90, 100, 100]
    spread = backoff_delays(1, base=100, jitter=0.1, rng=lambda: 1.0)
    assert spread == [pytest.approx(110.0)]


def test_connection_refused_is_transient():
    with pytest.raises(TransientDeliveryError):
        deliver(
            MSG, "a@a.example", ["b@b.example"], SmtpTarget(host="127.0.0.1", port=free_port(), timeout=5)
        )


def test_size_limit_honoured_on_both_sides():
    inbox = Inbox()
    with ReceivingEndpoint("127.0.0.1", 0, inbox, data_size_limit=2000) as ep:
        big = MSG + b"x" * 5000 + b"\r\n"
        with pytest.raises(PermanentDeliveryError) as err:
            deliver(
                big, "alice@a.example", ["bob@b.example"], SmtpTarget(host=ep.host, port=ep.port, timeout=10)
            )
        assert "552" in err.value.detail and "2000" in err.value.detail
        deliver(MSG, "alice@a.example", ["bob@b.example"], SmtpTarget(host=ep.host, port=ep.port, timeout=10))
    assert [i[2] for i in inbox.items] == [MSG]


def test_endpoint_maps_handler_errors_to_smtp_replies():
    with ReceivingEndpoint("127.0.0.1", 0, Inbox(MalformedMessage("bad", code="decrypt_failed"))) as ep:
        with pytest.raises(PermanentDeliveryError) as err:
            deliver(
                MSG, "alice@a.example", ["bob@b.example"], SmtpTarget(host=ep.host, port=ep.port, timeout=10)
            )
        assert err.value.detail.startswith("550") and "decrypt_failed" in err.value.detail
    with ReceivingEndpoint("127.0.0.1", 0, Inbox(TransientDeliveryError("later"))) as ep:
        with pytest.raises(TransientDeliveryError):
            deliver(
                MSG, "alice@a.example", ["bob@b.example"], SmtpTarget(host=ep.host, port=ep.port, timeout=10)
            )


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SMTP test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    (d / "srv.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "srv.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(d / "srv.pem", d / "srv.key")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


def _auth(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"hisp-user" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


def test_starttls_and_auth(tls_pair):
    server_ctx, client_ctx = tls_pair
    inbox = Inbox()
    with ReceivingEndpoint(
        "127.0.0.1", 0, inbox, tls_context=server_ctx, require_starttls=True, authenticator=_auth
    ) as ep:
        good = SmtpTarget(
            host="localhost",
            port=ep.port,
            starttls="require",
            username="hisp-user",
            password="s3cret",
            tls_context=client_ctx,
            timeout=10,
        )
        receipt = deliver(MSG, "alice@a.example", ["bob@b.example"], good)
        assert receipt.tls and inbox.items[0][2] == MSG
        bad = SmtpTarget(
            host="localhost",
            port=ep.port,
            username="hisp-user",
            password="wrong",
            tls_context=client_ctx,
            timeout=10,
        )
        with pytest.raises(PermanentDeliveryError) as err:
            deliver(MSG, "alice@a.example", ["bob@b.example"], bad)
        assert err.value.detail.startswith("535")
        with pytest.raises(PermanentDeliveryError):  # plaintext refused by a require-TLS server (530)
            deliver(
                MSG,
                "alice@a.example",
                ["bob@b.example"],
                SmtpTarget(host="localhost", port=ep.port, starttls="off", timeout=10),
            )
    assert len(inbox.items) == 1


def test_require_starttls_fails_when_not_offered(smtp_sink):
    with pytest.raises(PermanentDeliveryError) as err:
        deliver(MSG, "alice@a.example", ["bob@b.example"], sink_target(smtp_sink, starttls="require"))
    assert "STARTTLS" in err.value.detail


@pytest.mark.service("bind9")
def test_mx_routing_through_real_dns(bind, smtp_sink):
    # The fixture waits for the DNS port only; named opens its rndc control channel a moment later.
    wait_for_port(bind.host, bind.rndc_port, timeout=20)
    bind.zone(
        "mxroute.test",
        [
            "@ IN MX 10 mx1.mxroute.test.",
            "@ IN MX 20 mx2.mxroute.test.",
            "mx1 IN A 127.0.0.2",
            "mx2 IN A 127.0.0.1",
        ],
    )
    bind.zone("nullmx.test", ["@ IN MX 0 ."])
    bind.zone("nomx.test", ["@ IN A 127.0.0.1"])
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [bind.host]
    resolver.port = bind.port
    resolver.lifetime = 5
    assert mx_hosts("mxroute.test", resolver) == ["mx1.mxroute.test", "mx2.mxroute.test"]
    assert mx_hosts("nomx.test", resolver) == ["nomx.test"]  # implicit MX (RFC 5321 §5.1)
    with pytest.raises(PermanentDeliveryError):
        mx_hosts("nullmx.test", resolver)
    with pytest.raises(PermanentDeliveryError):
        mx_hosts("missing.mxroute.test", resolver)
    target = SmtpTarget(port=smtp_sink.port, resolver=resolver, timeout=5)
    receipt = deliver(MSG, "alice@a.example", ["bob@mxroute.test"], target)  # mx1 refuses -> mx2
    assert receipt.hosts == ["mx2.mxroute.test"]
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ["bob@mxroute.test"]


def test_credentials_never_sent_without_tls():
    """With starttls="opportunistic" and a server that offers no STARTTLS but accepts AUTH in the clear
    (aiosmtpd auth_require_tls=False), the password used to go over plaintext. Now delivery stops before
    AUTH with a permanent error; allow_plaintext_auth=True is the explicit opt-in (loopback smarthost)."""
    from aiosmtpd.controller import Controller

    attempts: list[bytes] = []

    def record(server, session, envelope, mechanism, auth_data):
        attempts.append(auth_data.password)
        return AuthResult(success=True, handled=False)

    inbox = Inbox()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            inbox(envelope.mail_from, envelope.rcpt_tos, envelope.original_content)
            return "250 OK"

    port = free_port()
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=record,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        target = SmtpTarget(host="127.0.0.1", port=port, username="u", password="s3cret", timeout=10)
        with pytest.raises(PermanentDeliveryError) as err:
            deliver(MSG, "alice@a.example", ["bob@b.example"], target)
        assert "TLS" in err.value.detail
        assert attempts == [] and inbox.items == []
        target.allow_plaintext_auth = True
        deliver(MSG, "alice@a.example", ["bob@b.example"], target)
        assert attempts == [b"s3cret"] and len(inbox.items) == 1
    finally:
        controller.stop()


def test_unexpected_handler_failure_logs_no_message_content(caplog):
    """A bug deep in a handler raises with whatever it was parsing in its message (here a patient's name).
    The endpoint answered 451 and logged the exception with its text (log.exception): PHI in the log. Now it
    logs the exception type and where it happened, never the exception text."""
    import logging

    caplog.set_level(logging.DEBUG)
    with ReceivingEndpoint("127.0.0.1", 0, Inbox(ValueError("Jane Q. Patient, DOB 1970-01-01"))) as ep:
        with pytest.raises(TransientDeliveryError):
            deliver(
                MSG, "alice@a.example", ["bob@b.example"], SmtpTarget(host=ep.host, port=ep.port, timeout=10)
            )
    logged = "\n".join(
        r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        for r in caplog.records
    )
    assert "ValueError" in logged
    assert "Jane" not in logged and "1970" not in logged


def test_trickling_smtp_server_is_cut_off_by_the_session_deadline():
    """The recipient domain's MX is chosen by whoever owns that domain. One that sends its greeting a byte
    at a time never trips the per-read timeout; the session deadline ends the attempt as transient."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while not stop.is_set():
                try:
                    conn.sendall(b"2")
                except OSError:
                    return
                stop.wait(0.3)

    threading.Thread(target=serve, daemon=True).start()
    target = SmtpTarget(host="127.0.0.1", port=listener.getsockname()[1], timeout=1, deadline=2)
    outcome: list[object] = []

    def attempt() -> None:
        try:
            deliver(MSG, "alice@a.example", ["bob@b.example"], target)
            outcome.append("delivered")
        except TransientDeliveryError as exc:
            outcome.append(exc.code)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(20)
    stop.set()
    listener.close()
    assert outcome == ["delivery_deferred"]


def test_port_zero_is_bound_by_the_kernel_and_reported():
    """Port 0 is now passed to the listener itself (the old probe-then-bind could lose the port to another
    process in between); ``.port`` reports what the kernel chose, distinct for two endpoints."""
    with ReceivingEndpoint("127.0.0.1", 0, Inbox()) as one, ReceivingEndpoint("127.0.0.1", 0, Inbox()) as two:
        assert one.port and two.port and one.port != two.port
        deliver(
            MSG, "alice@a.example", ["bob@b.example"], SmtpTarget(host="127.0.0.1", port=two.port, timeout=10)
        )

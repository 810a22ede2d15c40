"""The notice policy (issue 12, findings 1, 2 and 13) on the sidecar's real inbound SMTP endpoint.

The sidecar is ``fhir_bridge.sidecar.build_sidecar`` on SQLite with its inbound endpoint started by
``fhir_bridge.inbound.start_endpoint`` exactly as ``bbdirect serve`` and tests/e2e/conftest.py start it;
only the record builder and the outbound sender are doubles (a transmission needs a Message-ID and
``sent``, nothing more). Notices travel over real SMTP (smtplib → aiosmtpd) and are real S/MIME from
:mod:`direct.smime`, signed by certificates of the test PKI (tests/support/pki.py).
"""

from __future__ import annotations

import itertools
import smtplib
import threading
import time
import uuid
from email.policy import SMTP as _SMTP_POLICY
from email.utils import make_msgid

import pytest
from sqlalchemy import select

from direct.mdn import build_dsn, build_mdn
from direct.smime import Identity, seal
from direct.transport.smtp_server import ReceivingEndpoint
from fhir_bridge.pipeline.ports import Attachment, Document, Prepared
from tests.support.services import free_port

SENDER = "bluebutton@direct.sender.test"
RECIPIENT = "dr.kim@direct.clinic.test"
OTHER = "carol@direct.other.test"
_patients = itertools.count(1)
#: CRLF, no re-folding: the bytes a HISP sends (build_mdn/build_dsn already fold nothing).
SMTP = _SMTP_POLICY.clone(max_line_length=None, refold_source="none")


class Record:
    def build(self, auth):  # type: ignore[no-untyped-def]
        return Document([Attachment("ccd.xml", b"<ccd/>", "application/xml")], "h")


class Sender:
    """Hands out a fresh Message-ID per message; 'delivers' nowhere (the test is about what comes back)."""

    def prepare(self, auth, document):  # type: ignore[no-untyped-def]
        mid = make_msgid(idstring=uuid.uuid4().hex[:12], domain="direct.sender.test")
        return Prepared(mid, SENDER, [auth.address], b"sealed", signed=True, encrypted=True, trusted=True)

    def deliver(self, prepared):  # type: ignore[no-untyped-def]
        return None


class Checker:
    def check(self, address: str, policy: str) -> bool:
        return True


@pytest.fixture(scope="module")
def certs(pki):
    sender = pki.address(SENDER, issuer=pki.root)
    cert_path, key_path = pki.write(sender, "inbound-sender")
    return {
        "sender": sender,
        "cert": cert_path,
        "key": key_path,
        "anchor": pki.root_pem,
        "recipient": Identity.from_issued(pki.address(RECIPIENT, issuer=pki.root)),
        # A member of the same trust community (same anchor), bound to another address.
        "other": Identity.from_issued(pki.address(OTHER, issuer=pki.root)),
        # The recipient's HISP, bound to the recipient's domain (AS 1.2 §4.1 domain binding).
        "hisp": Identity.from_issued(pki.domain("direct.clinic.test", issuer=pki.root)),
    }


class Inbound:
    """One sidecar with its inbound endpoint; helpers to make a ``sent`` transmission and to talk SMTP."""

    def __init__(self, tmp_path, certs, **settings):  # type: ignore[no-untyped-def]
        from fhir_bridge.app import build_sidecar
        from fhir_bridge.config import load_settings
        from fhir_bridge.inbound import start_endpoint

        self.certs = certs
        self.port = free_port()
        self.settings = load_settings(
            env={},
            database_url=f"sqlite:///{tmp_path}/inbound-{uuid.uuid4().hex[:8]}.sqlite3",
            fhir_write_consent=False,
            direct_from_address=SENDER,
            direct_identity_cert=str(certs["cert"]),
            direct_identity_key=str(certs["key"]),
            direct_trust_anchors=[str(certs["anchor"])],
            direct_inbound_host="127.0.0.1",
            direct_inbound_port=self.port,
            **settings,
        )
        self.sidecar = build_sidecar(self.settings, builder=Record(), sender=Sender(), checker=Checker())
        self.endpoint = start_endpoint(self.settings, self.sidecar.notices)

    def close(self) -> None:
        self.endpoint.stop()
        self.sidecar.db.dispose()

    # --- transmissions -----------------------------------------------------------------------------------
    def sent(self) -> tuple[str, str]:
        """A transmission to RECIPIENT in state ``sent``: (its id, its Message-ID)."""
        from fhir_bridge import audit
        from fhir_bridge.consent.model import parse_request

        patient = f"p{next(_patients)}"
        req = parse_request(
            {
                "patient_id": patient,
                "address": RECIPIENT,
                "kind": "once",
                "created_by": {"type": "patient", "id": patient},
                "send_now": True,
            }
        )
        self.sidecar.consent.create(req, audit.Actor("patient", patient))
        self.sidecar.pipeline.run_due("w1")
        tx = self.tx_of(patient)
        assert tx.state == "sent" and tx.message_id
        return tx.id, tx.message_id

    def tx_of(self, patient: str):  # type: ignore[no-untyped-def]
        from fhir_bridge.db.models import Transmission

        with self.sidecar.db.session() as s:
            return s.scalars(select(Transmission).where(Transmission.patient_id == patient)).one()

    def tx(self, tx_id: str):  # type: ignore[no-untyped-def]
        from fhir_bridge.db.models import Transmission

        with self.sidecar.db.session() as s:
            return s.get(Transmission, tx_id)

    def audit(self, tx_id: str) -> list[tuple[str, str, dict]]:
        from fhir_bridge import audit

        with self.sidecar.db.session() as s:
            return [
                (r.action, r.outcome, r.detail or {})
                for r in audit.history(s, entity_id=tx_id)
                if r.action.startswith("delivery.notice")
            ]

    # --- SMTP ----------------------------------------------------------------------------------------------
    def smtp(self, raw: bytes, mail_from: str = "") -> tuple[int, bytes]:
        """One SMTP transaction to the inbound endpoint; the reply to DATA."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
            smtp.ehlo()
            code, msg = smtp.mail(mail_from)
            assert code == 250, msg
            code, msg = smtp.rcpt(SENDER)
            assert code == 250, msg
            return smtp.data(raw)

    def mdn(
        self,
        message_id: str,
        disposition: str = "processed",
        *,
        signer: str = "recipient",
        final_recipient: str = RECIPIENT,
        from_addr: str = RECIPIENT,
        failure: str | None = None,
        replace: tuple[bytes, bytes] | None = None,
    ) -> tuple[int, bytes]:
        """A signed and encrypted MDN (as a HISP sends it) over SMTP."""
        mdn = build_mdn(
            original_message_id=message_id,
            original_sender=SENDER,
            final_recipient=final_recipient,
            disposition="processed" if replace else disposition,
            failure=failure,
        )
        if from_addr != final_recipient:
            del mdn["From"]
            mdn["From"] = from_addr
        raw = mdn.as_bytes(policy=SMTP)
        if replace:
            assert replace[0] in raw
            raw = raw.replace(*replace)
        sealed = seal(raw, self.certs[signer], [self.certs["sender"].cert])
        return self.smtp(sealed, from_addr)


@pytest.fixture(scope="module")
def inbound(tmp_path_factory, certs):
    running = Inbound(tmp_path_factory.mktemp("inbound"), certs)
    yield running
    running.close()


def plain_report(report_type: str, part_type: str, fields: str) -> bytes:
    return (
        f"From: mailer-daemon@relay.elsewhere.test\r\nTo: {SENDER}\r\nSubject: Delivery report\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@relay.elsewhere.test>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="BB"\r\n\r\n'
        "--BB\r\nContent-Type: text/plain\r\n\r\nYour message was delivered.\r\n"
        f"--BB\r\nContent-Type: {part_type}\r\n\r\n{fields}\r\n--BB--\r\n"
    ).encode()


def unsigned_dsn(message_id: str, diagnostic: str = "mailbox unavailable") -> bytes:
    return build_dsn(
        original_message_id=message_id,
        original_sender=SENDER,
        recipient=RECIPIENT,
        reporting_mta="mx.elsewhere.test",
        status="5.2.1",
        diagnostic=diagnostic,
    ).as_bytes(policy=SMTP)


# --- finding 1: forged notices --------------------------------------------------------------------------------
def test_unsigned_delivery_status_carrying_an_mdn_part_moves_nothing(inbound):
    """Finding 1: labelled delivery-status, carrying message/disposition-notification 'dispatched'."""
    tx_id, mid = inbound.sent()
    forged = plain_report(
        "delivery-status",
        "message/disposition-notification",
        f"Reporting-UA: relay\r\nFinal-Recipient: rfc822; {RECIPIENT}\r\nOriginal-Message-ID: {mid}\r\n"
        "Disposition: automatic-action/MDN-sent-automatically;dispatched\r\n"
        "X-DIRECT-FINAL-DESTINATION-DELIVERY:\r\n",
    )
    code, _ = inbound.smtp(forged)
    assert code >= 500
    assert inbound.tx(tx_id).state == "sent"


def test_unsigned_mdn_is_refused_and_moves_nothing(inbound):
    tx_id, mid = inbound.sent()
    fields = (
        f"Final-Recipient: rfc822; {RECIPIENT}\r\nOriginal-Message-ID: {mid}\r\n"
        "Disposition: automatic-action/MDN-sent-automatically;processed\r\n"
    )
    code, _ = inbound.smtp(
        plain_report("disposition-notification", "message/disposition-notification", fields)
    )
    assert code >= 500 and inbound.tx(tx_id).state == "sent"


def test_unsigned_dsn_from_a_non_relay_is_recorded_unverified_and_fails_nothing(inbound):
    """Finding 1: a plain DSN failed any transmission and stored the sender's text."""
    tx_id, mid = inbound.sent()
    code, msg = inbound.smtp(unsigned_dsn(mid, 'Call 555-0100 "now"'))
    assert code == 250, msg
    tx = inbound.tx(tx_id)
    assert tx.state == "sent" and tx.reason_detail is None
    [(action, outcome, detail)] = inbound.audit(tx_id)
    assert (action, outcome) == ("delivery.notice.unverified", "unverified")
    assert detail["verified"] is False and detail["signed"] is False
    assert detail["remote_text"] == '"smtp; Call 555-0100 \\"now\\""'  # quoted: the remote's words


def test_unsigned_dsn_from_the_configured_relay_fails_with_quoted_limited_text(tmp_path, certs):
    relay = Inbound(tmp_path, certs, direct_dsn_relays=["127.0.0.1/32"])
    try:
        tx_id, mid = relay.sent()
        # A "delivered" DSN, even from our relay, is no delivery notice: unsigned never means success.
        delivered = unsigned_dsn(mid).replace(b"Action: failed", b"Action: delivered")
        assert relay.smtp(delivered)[0] == 250
        assert relay.tx(tx_id).state == "sent"
        assert relay.smtp(unsigned_dsn(mid, "x" * 900))[0] == 250
        tx = relay.tx(tx_id)
        assert tx.state == "failed" and tx.reason_code == "delivery_failed_notice"
        assert tx.reason_detail.startswith('The remote system said: "smtp; xxx')
        assert tx.reason_detail.endswith('..."') and len(tx.reason_detail) < 260
    finally:
        relay.close()


def test_a_signed_notice_about_another_recipient_moves_nothing(inbound):
    """Finding 1: the Final-Recipient was never compared with the transmission's recipient."""
    tx_id, mid = inbound.sent()
    code, _ = inbound.mdn(mid, "processed", signer="other", final_recipient=OTHER, from_addr=OTHER)
    assert code == 250
    assert inbound.tx(tx_id).state == "sent"
    assert [a[:2] for a in inbound.audit(tx_id)] == [("delivery.notice.ignored", "other_recipient")]


# --- finding 2: someone else's MDN ------------------------------------------------------------------------------
def test_an_mdn_signed_by_a_certificate_not_bound_to_the_recipient_moves_nothing(inbound):
    tx_id, mid = inbound.sent()
    for disposition in ("processed", "failed"):
        code, _ = inbound.mdn(mid, disposition, signer="other", from_addr=OTHER)
        assert code == 250
        assert inbound.tx(tx_id).state == "sent"
    assert {a[:2] for a in inbound.audit(tx_id)} == {("delivery.notice.ignored", "not_bound")}


def test_displayed_is_delivered(inbound):
    tx_id, mid = inbound.sent()
    code, _ = inbound.mdn(mid, replace=(b";processed", b";displayed"))
    assert code == 250
    assert inbound.tx(tx_id).state == "dispatched"


def test_an_mdn_without_a_disposition_is_ignored_as_malformed_not_failed(inbound):
    tx_id, mid = inbound.sent()
    code, _ = inbound.mdn(
        mid, replace=(b"Disposition: automatic-action/MDN-sent-automatically;processed\r\n", b"")
    )
    assert code == 250
    assert inbound.tx(tx_id).state == "sent"
    assert [a[:2] for a in inbound.audit(tx_id)] == [("delivery.notice.ignored", "malformed")]


def test_genuine_mdns_still_move_the_transmission(inbound):
    tx_id, mid = inbound.sent()
    assert inbound.mdn(mid, "processed")[0] == 250
    assert inbound.tx(tx_id).state == "processed"
    # The recipient's HISP with a domain-bound certificate speaks for the recipient too (CERT-1).
    assert inbound.mdn(mid, "dispatched", signer="hisp")[0] == 250
    tx = inbound.tx(tx_id)
    assert tx.state == "dispatched" and tx.dispatched_at is not None
    assert [a[:2] for a in inbound.audit(tx_id)] == [
        ("delivery.notice", "processed"),
        ("delivery.notice", "dispatched"),
    ]


def test_a_failed_mdn_keeps_the_remote_text_quoted_and_short(inbound):
    tx_id, mid = inbound.sent()
    assert inbound.mdn(mid, "failed", failure="Mailbox full " + "y" * 400)[0] == 250
    tx = inbound.tx(tx_id)
    assert tx.state == "failed"
    assert tx.reason_detail.startswith('The remote system said: "Mailbox full yyy')
    assert len(tx.reason_detail) < 260


# --- finding 13: abuse limits -------------------------------------------------------------------------------------
def test_the_endpoint_limits_connections_and_size(tmp_path, certs):
    limited = Inbound(tmp_path, certs, direct_inbound_max_connections=2, direct_inbound_max_bytes=65536)
    try:
        first = smtplib.SMTP("127.0.0.1", limited.port, timeout=10)
        second = smtplib.SMTP("127.0.0.1", limited.port, timeout=10)
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", limited.port, timeout=10)
        assert refused.value.smtp_code == 421  # transient: the client tries again later
        first.quit()
        second.quit()
        # Freed slots are reusable; a message over the size limit is refused with 552 (RFC 1870).
        tx_id, mid = limited.sent()
        big = unsigned_dsn(mid).replace(b"\r\n\r\n", b"\r\n\r\n" + (b"z" * 70 + b"\r\n") * 1000, 1)
        with smtplib.SMTP("127.0.0.1", limited.port, timeout=10) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("size") and int(smtp.esmtp_features["size"]) == 65536
            smtp.mail("")
            smtp.rcpt(SENDER)
            assert smtp.data(big)[0] == 552
        assert limited.tx(tx_id).state == "sent"
    finally:
        limited.close()


def test_handlers_run_on_the_endpoints_own_bounded_pool():
    seen: list[str] = []
    active = [0, 0]  # current, highest
    lock = threading.Lock()

    def handler(mail_from, rcpt_tos, data):  # type: ignore[no-untyped-def]
        with lock:
            active[0] += 1
            active[1] = max(active)
            seen.append(threading.current_thread().name)
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        return "250 2.0.0 ok"

    with ReceivingEndpoint("127.0.0.1", 0, handler, workers=1, max_connections=4) as endpoint:

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", endpoint.port, timeout=10) as smtp:
                smtp.sendmail("a@b.test", ["c@d.test"], b"Subject: x\r\n\r\nx\r\n")

        threads = [threading.Thread(target=send) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert len(seen) == 3 and all(name.startswith("smtp-inbound") for name in seen)
    assert active[1] == 1  # one worker: unseals never pile up on a shared executor

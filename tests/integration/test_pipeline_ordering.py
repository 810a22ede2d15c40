"""Per-authorization order through a real SMTP listener (issue 14 #1): a stale record never arrives last.

The receiving server (tests/fixtures/smtp.py, a real aiosmtpd listener) answers 451 to the first message
of an *always* authorization; while that job waits to retry, the record changes and a newer job is
created. The newer message must be the last one the recipient holds, the older stored message must never
arrive after it, and the API's latest transmission must agree with the authorization's ``last_sent_at``.

Real parts: the Flask API, SQLite file, migrations, pipeline and local worker threads, the SMTP client and
listener. The record is a small in-process document (HAPI and S/MIME are covered by test_bridge_e2e.py):
what is under test is the order of delivery, which does not depend on what the document contains.
"""

from __future__ import annotations

import email
import time

import pytest

from fhir_bridge.app import create_app
from fhir_bridge.config import load_settings
from fhir_bridge.pipeline.ports import Attachment, Document, Prepared
from fhir_bridge.pipeline.runner import LocalRunner

KEY = "ordering-secret"
HEADERS = {"Authorization": f"Bearer {KEY}"}


class Record:
    """The patient's record: its version is what the test changes between jobs."""

    def __init__(self) -> None:
        self.version = "v1"

    def build(self, auth) -> Document:
        text = f"<ClinicalDocument>{self.version}</ClinicalDocument>".encode()
        return Document([Attachment("CCD.xml", text, "application/xml")], self.version)


class PlainSender:
    """Puts the record version in a plain message and delivers it with the product's SMTP client."""

    def __init__(self, settings) -> None:
        self.settings = settings

    def prepare(self, auth, document: Document) -> Prepared:
        from direct.message import build_message, to_bytes

        version = document.attachments[0].content.decode()
        msg = build_message(self.settings.direct_from_address, [auth.address], "ordering", version)
        return Prepared(
            str(msg["Message-ID"]), self.settings.direct_from_address, [auth.address], to_bytes(msg)
        )

    def deliver(self, prepared: Prepared) -> None:
        from fhir_bridge.wiring import _smtplib_deliver

        _smtplib_deliver(self.settings, prepared)


class Checker:
    def check(self, address: str, policy: str) -> bool:
        return True


def _body_version(raw: bytes) -> str:
    message = email.message_from_bytes(raw)
    for part in message.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            if b"ClinicalDocument" in payload:
                return payload.decode().split(">")[1].split("<")[0]
    raise AssertionError("no record in the message")


def _wait(predicate, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """Poll the database-backed condition until true (bounded; the assertion is on state, not time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def api(tmp_path, smtp_sink):
    settings = load_settings(
        env={},
        database_url=f"sqlite:///{tmp_path}/order.sqlite3",
        server_api_keys=[f"emr:{KEY}"],
        fhir_write_consent=False,
        direct_smtp_host=smtp_sink.host,
        direct_smtp_port=smtp_sink.port,
        pipeline_debounce_seconds=0.2,
        pipeline_tick_seconds=0.05,
        # The deferred job's first retry would come 1 s later: well after the newer job was accepted.
        pipeline_backoff_base=1.0,
    )
    record = Record()
    app = create_app(
        settings, web=False, detectors=False, builder=record, sender=PlainSender(settings), checker=Checker()
    )
    client = app.test_client()
    sidecar = app.extensions["bbdirect"]
    runner = LocalRunner(sidecar.pipeline, threads=2, tick=0.05).start()
    yield client, sidecar, record
    runner.stop()
    sidecar.db.dispose()


def test_a_job_answered_451_never_delivers_its_stale_record_after_a_newer_one(api, smtp_sink):
    client, _sidecar, record = api
    smtp_sink.fail_next("451 4.3.0 Mailbox busy, try later")
    r = client.post(
        "/api/v1/authorizations",
        json={
            "patient_id": "p1",
            "address": "dr@direct.example.org",
            "kind": "always",
            "created_by": {"type": "clinician", "id": "u1"},
            "consent_method": "in_person",
            "send_now": True,
        },
        headers=HEADERS,
    )
    assert r.status_code == 201, r.json
    auth_id = r.json["authorization"]["id"]

    def transmissions() -> list[dict]:
        listing = client.get(f"/api/v1/authorizations/{auth_id}/transmissions", headers=HEADERS).json
        return sorted(listing["transmissions"], key=lambda t: t["created_at"])

    # The first (v1) job was sealed, stored and answered 451: it waits for its retry.
    [older] = _wait(lambda: [t for t in transmissions() if t["state"] == "retrying"], "the 451 deferral")
    assert older["reason"]["code"] == "delivery_deferred"

    record.version = "v2"
    assert client.post("/api/v1/patients/p1/changed", headers=HEADERS).status_code == 202
    newest = _wait(
        lambda: [t for t in transmissions() if t["id"] != older["id"] and t["state"] == "sent"], "v2"
    )
    # The older job reaches a final state (or, before the fix, delivers its stored v1 message).
    older_id = older["id"]
    [older] = _wait(
        lambda: [t for t in transmissions() if t["id"] == older_id and t["state"] in {"sent", "cancelled"}],
        "the older job to end",
    )

    received = [
        (email.message_from_bytes(m.data)["Message-ID"], _body_version(m.data)) for m in smtp_sink.messages
    ]
    assert received[-1] == (newest[0]["message_id"], "v2")
    assert older["message_id"] not in [mid for mid, _ in received]
    assert (older["state"], older["reason"]["code"]) == ("cancelled", "superseded")

    auth = client.get(f"/api/v1/authorizations/{auth_id}", headers=HEADERS).json["authorization"]
    latest = auth["latest_transmission"]
    assert latest["id"] == newest[0]["id"] and latest["state"] == "sent"
    assert auth["last_sent_at"] == latest["sent_at"]

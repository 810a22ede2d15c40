"""The sidecar end to end on real peers: HAPI FHIR (rest-hook Subscriptions), BIND9 (DNS CERT discovery),
a real SMTP listener (the recipient's HISP), waitress serving the API, local workers on SQLite.

A change written to HAPI reaches the recipient as a signed and encrypted Direct message whose C-CDA holds
the new value; bursts coalesce; revoke stops sending; SMTP 4xx retries, 5xx fails with the server's text;
a recipient with no certificate is refused at creation with the discovery reason.
"""

from __future__ import annotations

import base64
import threading
import time

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding

from direct.smime.identity import Identity
from direct.smime.seal import unseal
from tests.support.services import free_port, wait_for_port

pytestmark = [pytest.mark.service("hapi"), pytest.mark.service("bind9"), pytest.mark.slow]

KEY = "e2e-key"
DEBOUNCE = 2.0
RECIPIENT = "drjones@hisp-e2e.test"


class Running:
    """One sidecar (API + detectors + workers) served by waitress on loopback."""

    def __init__(self, settings):
        import waitress.server

        from fhir_bridge.app import create_app

        self.app = create_app(settings)  # everything: API, web pages, detectors
        self.sidecar = self.app.extensions["bbdirect"]
        self.server = waitress.server.create_server(
            self.app, host=settings.server_host, port=settings.server_port, threads=4
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for_port(settings.server_host, settings.server_port)
        self.sidecar.start(workers=2)
        self.base = f"http://{settings.server_host}:{settings.server_port}"

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(
            method, self.base + path, headers={"Authorization": f"Bearer {KEY}"}, timeout=60, **kw
        )

    def close(self) -> None:
        self.sidecar.stop()
        self.server.task_dispatcher.shutdown()
        self.server.close()


@pytest.fixture(scope="module")
def world(hapi, bind, pki, smtp_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    recipient = pki.address(RECIPIENT, issuer=pki.root)
    sender = pki.address("bluebutton@sender-e2e.test", issuer=pki.root)
    cert_path, key_path = pki.write(sender, "e2e-sender")
    der = recipient.cert.public_bytes(Encoding.DER)
    bind.zone("hisp-e2e.test", [f"drjones IN CERT PKIX 0 0 ( {base64.b64encode(der).decode()} )"])
    patient = hapi.create(
        {
            "resourceType": "Patient",
            "name": [{"family": "Doe", "given": ["Jane"]}],
            "gender": "female",
            "birthDate": "1970-01-01",
        }
    )
    return {
        "tmp": tmp,
        "recipient": Identity.from_issued(recipient),
        "sender_cert": sender.cert,
        "anchors": [pki.root.cert],
        "patient": patient["id"],
        "settings": dict(
            fhir_base_url=hapi.base_url,
            direct_dns_server=bind.nameserver,
            direct_smtp_host=smtp_server.host,
            direct_smtp_port=smtp_server.port,
            direct_from_address="bluebutton@sender-e2e.test",
            direct_identity_cert=str(cert_path),
            direct_identity_key=str(key_path),
            direct_trust_anchors=[str(pki.root_pem)],
            server_api_keys=[f"e2e:{KEY}"],
            pipeline_debounce_seconds=DEBOUNCE,
            pipeline_tick_seconds=0.2,
            pipeline_backoff_base=1.0,
            fhir_write_consent=True,
        ),
    }


def make_settings(world, name: str, **over):
    from fhir_bridge.config import load_settings

    port = free_port()
    values = {
        **world["settings"],
        "database_url": f"sqlite:///{world['tmp']}/{name}.sqlite3",
        "server_port": port,
        "server_public_url": f"http://127.0.0.1:{port}",
        "server_secret_key": f"secret-{name}",
        **over,
    }
    return load_settings(env={}, **values)


@pytest.fixture(scope="module")
def sidecar(world):
    running = Running(
        make_settings(
            world,
            "hook",
            sources_subscriptions=True,
            sources_subscription_recheck=30.0,
            direct_inbound_port=free_port(),
            fhir_write_audit=True,
        )
    )
    # Wait until HAPI has activated every one of our Subscriptions (they start as "requested").
    assert running.sidecar.subscriptions is not None
    manager = running.sidecar.subscriptions()
    deadline = time.monotonic() + 90
    while not manager.all_active():
        assert time.monotonic() < deadline, "HAPI did not activate the sidecar's Subscriptions"
        time.sleep(0.3)
    yield running
    running.close()


def ccd_of(world, message) -> str:
    result = unseal(message.data, [world["recipient"]], world["anchors"])
    assert result.ok, result.error
    [ccd] = [a for a in result.attachments if a.filename.lower().endswith(".xml")]
    return ccd.data.decode()


def observation(patient_id: str, value: float) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-01-02T10:00:00Z",
        "valueQuantity": {
            "value": value,
            "unit": "mg/dL",
            "system": "http://unitsofmeasure.org",
            "code": "mg/dL",
        },
    }


def authorize(running, world, kind="always", address=RECIPIENT, send_now=True) -> requests.Response:
    return running.api(
        "POST",
        "/api/v1/authorizations",
        json={
            "patient_id": world["patient"],
            "address": address,
            "kind": kind,
            "created_by": {"type": "clinician", "id": "dr-who"},
            "consent_method": "in_person",
            "send_now": send_now,
        },
    )


def wait_messages(running, smtp, count: int, timeout: float):
    """``smtp.wait_for`` that, on timeout, says where the transmissions are stuck (state and reason)."""
    try:
        return smtp.wait_for(count, timeout=timeout)
    except TimeoutError:
        from sqlalchemy import select

        from fhir_bridge.db import Transmission

        with running.sidecar.db.session() as s:
            rows = s.execute(
                select(
                    Transmission.state,
                    Transmission.reason_code,
                    Transmission.reason_message,
                    Transmission.attempts,
                )
            ).all()
        raise AssertionError(f"{len(smtp.messages)} of {count} messages; transmissions: {rows}") from None


def wait_state(running, tx_id: str, states: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        tx = running.api("GET", f"/api/v1/transmissions/{tx_id}").json()["transmission"]
        if tx["state"] in states or time.monotonic() > deadline:
            return tx
        time.sleep(0.2)


def quiet(smtp, count: int, seconds: float) -> None:
    """Nothing beyond ``count`` messages arrives for ``seconds`` (used after a debounce window)."""
    time.sleep(seconds)
    assert len(smtp.messages) == count


def test_always_sends_now_and_after_each_change_and_a_burst_is_one_message(sidecar, world, hapi, smtp_sink):
    r = authorize(sidecar, world)
    assert r.status_code == 201, r.text
    auth_id = r.json()["authorization"]["id"]
    [first] = wait_messages(sidecar, smtp_sink, 1, timeout=60)
    assert "ClinicalDocument" in ccd_of(world, first) and "187.5" not in ccd_of(world, first)

    hapi.create(observation(world["patient"], 187.5))
    messages = wait_messages(sidecar, smtp_sink, 2, timeout=DEBOUNCE + 30)
    assert "187.5" in ccd_of(world, messages[1])

    for i in range(20):
        hapi.create(observation(world["patient"], 200 + i))
    messages = wait_messages(sidecar, smtp_sink, 3, timeout=DEBOUNCE + 40)
    assert "219" in ccd_of(world, messages[2])
    quiet(smtp_sink, 3, DEBOUNCE + 2)

    tx = sidecar.api("GET", f"/api/v1/authorizations/{auth_id}/transmissions").json()["transmissions"]
    assert all(t["signed"] and t["encrypted"] and t["trusted"] for t in tx if t["state"] == "sent")

    assert consent_status(hapi, auth_id) == "active"

    # Revoke: a later change sends nothing.
    assert sidecar.api("POST", f"/api/v1/authorizations/{auth_id}/revoke").status_code == 200
    hapi.create(observation(world["patient"], 300))
    quiet(smtp_sink, 3, DEBOUNCE + 3)
    assert consent_status(hapi, auth_id) == "inactive"
    # The audit trail reached the FHIR server as AuditEvents (mirrored in the background).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        events = requests.get(hapi.url("AuditEvent"), params={"_summary": "count"}, timeout=30).json()
        if events.get("total", 0) >= 5:
            break
        time.sleep(0.5)
    assert events["total"] >= 5


def consent_status(hapi, auth_id: str) -> str | None:
    bundle = requests.get(
        hapi.url("Consent"), params={"identifier": f"urn:bbdirect:authorization|{auth_id}"}, timeout=30
    ).json()
    entries = bundle.get("entry", [])
    assert len(entries) == 1
    return entries[0]["resource"]["status"]


def test_smtp_4xx_then_250_is_delivered_once_and_5xx_fails_with_the_server_text(sidecar, world, smtp_sink):
    smtp_sink.fail_next("451 4.3.0 Mailbox busy, try later")
    r = authorize(sidecar, world, kind="once")
    tx_id = r.json()["authorization"]["latest_transmission"]["id"]
    wait_messages(sidecar, smtp_sink, 1, timeout=60)
    quiet(smtp_sink, 1, 1.5)
    tx = wait_state(sidecar, tx_id, {"sent"})
    assert (tx["state"], tx["attempts"]) == ("sent", 2)

    smtp_sink.clear()
    smtp_sink.fail_next("554 5.7.1 Recipient refused by policy")
    r = authorize(sidecar, world, kind="once")
    tx_id = r.json()["authorization"]["latest_transmission"]["id"]
    tx = wait_state(sidecar, tx_id, {"failed"})
    assert tx["state"] == "failed" and tx["reason"]["code"] == "delivery_refused"
    assert "554 5.7.1 Recipient refused by policy" in tx["reason"]["detail"]
    assert smtp_sink.messages == []


def test_a_recipient_without_a_certificate_is_refused_at_creation(sidecar, world, smtp_sink):
    r = authorize(sidecar, world, address="nobody@hisp-e2e.test")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "no_certificate" and r.json()["error"]["field"] == "address"
    listed = sidecar.api("GET", f"/api/v1/patients/{world['patient']}/authorizations").json()[
        "authorizations"
    ]
    assert all(a["address"] != "nobody@hisp-e2e.test" for a in listed)


def send_mdn(running, world, message_id: str, disposition: str) -> None:
    """The recipient's HISP answers with a signed + encrypted MDN to the sidecar's inbound SMTP endpoint."""
    import smtplib

    from direct.mdn import build_mdn
    from direct.smime.seal import seal

    mdn = build_mdn(
        original_message_id=message_id,
        original_sender="bluebutton@sender-e2e.test",
        final_recipient=RECIPIENT,
        disposition=disposition,
    )
    raw = seal(mdn, world["recipient"], [world["sender_cert"]])
    settings = running.sidecar.settings
    with smtplib.SMTP(settings.direct_inbound_host, settings.direct_inbound_port, timeout=30) as smtp:
        smtp.sendmail(RECIPIENT, ["bluebutton@sender-e2e.test"], raw)


def test_mdns_move_the_transmission_to_processed_then_dispatched(sidecar, world, smtp_sink):
    r = authorize(sidecar, world, kind="once")
    tx_id = r.json()["authorization"]["latest_transmission"]["id"]
    wait_messages(sidecar, smtp_sink, 1, timeout=60)
    tx = wait_state(sidecar, tx_id, {"sent"})
    assert tx["state"] == "sent"
    send_mdn(sidecar, world, tx["message_id"], "processed")
    assert sidecar.api("GET", f"/api/v1/transmissions/{tx_id}").json()["transmission"]["state"] == "processed"
    send_mdn(sidecar, world, tx["message_id"], "dispatched")
    tx = sidecar.api("GET", f"/api/v1/transmissions/{tx_id}").json()["transmission"]
    assert tx["state"] == "dispatched" and tx["dispatched_at"]


def test_chosen_documents_travel_as_an_xdm_package_with_their_file_list(sidecar, world, hapi, smtp_sink):
    import io
    import zipfile

    note = b"Discharge summary: walk daily."
    doc = hapi.create(
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "subject": {"reference": f"Patient/{world['patient']}"},
            "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5"}]},
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain",
                        "title": "discharge.txt",
                        "data": base64.b64encode(note).decode(),
                    }
                }
            ],
        }
    )
    r = sidecar.api(
        "POST",
        "/api/v1/authorizations",
        json={
            "patient_id": world["patient"],
            "address": RECIPIENT,
            "kind": "once",
            "created_by": {"type": "clinician", "id": "dr-who"},
            "consent_method": "in_person",
            "payload": {"type": "documents", "documents": [{"id": f"DocumentReference/{doc['id']}"}]},
        },
    )
    assert r.status_code == 201, r.text
    [message] = wait_messages(sidecar, smtp_sink, 1, timeout=60)
    result = unseal(message.data, [world["recipient"]], world["anchors"])
    assert result.ok and result.message["Subject"] == "XDM/1.0/DDM"
    [package] = [a for a in result.attachments if a.filename.lower().endswith(".zip")]
    files = zipfile.ZipFile(io.BytesIO(package.data))
    names = set(files.namelist())
    assert {"IHE_XDM/SUBSET01/METADATA.XML", "IHE_XDM/SUBSET01/discharge.txt", "INDEX.HTM"} <= names
    assert files.read("IHE_XDM/SUBSET01/discharge.txt") == note
    assert b"discharge.txt" in files.read("IHE_XDM/SUBSET01/METADATA.XML")


def test_same_by_polling_without_subscriptions(world, hapi, smtp_sink, sidecar):
    sidecar.sidecar.stop()  # the rest-hook sidecar stops working; its Subscriptions would still notify it
    running = Running(
        make_settings(
            world,
            "poll",
            sources_subscriptions=False,
            sources_polling=True,
            sources_poll_interval=1.0,
            sources_poll_overlap=2.0,
        )
    )
    try:
        # The first poll only records the watermarks; a change before it would (rightly) not be reported.
        from fhir_bridge.db import SourceState

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with running.sidecar.db.session() as s:
                if s.query(SourceState).count():
                    break
            time.sleep(0.2)
        r = authorize(running, world, send_now=False)
        assert r.status_code == 201
        hapi.create(observation(world["patient"], 142.25))
        [message] = wait_messages(running, smtp_sink, 1, timeout=DEBOUNCE + 40)
        assert "142.25" in ccd_of(world, message)
    finally:
        running.close()


class StallingHisp:
    """An SMTP listener whose first DATA hangs until released (then 451): a sender killed meanwhile never saw
    a reply, so its message was not accepted. Later transactions are accepted and recorded."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.in_data = threading.Event()
        self.release = threading.Event()
        self.accepted: list[bytes] = []
        self.stalled = False
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        if not self.stalled:
            self.stalled = True
            self.in_data.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "451 4.4.2 Connection lost"
        self.accepted.append(bytes(envelope.original_content or b""))
        return "250 2.0.0 OK"


def test_kill_9_of_a_worker_mid_send_then_restart_delivers_exactly_one_message(world, tmp_path):
    import email
    import os
    import signal
    import subprocess
    import sys

    from fhir_bridge import audit
    from fhir_bridge.app import build_sidecar
    from fhir_bridge.consent.model import parse_request
    from fhir_bridge.db import Transmission

    hisp = StallingHisp()
    settings = make_settings(
        world,
        "kill",
        direct_smtp_host="127.0.0.1",
        direct_smtp_port=hisp.controller.port,
        pipeline_lease_seconds=2.0,
        sources_subscriptions=False,
        fhir_write_consent=False,
    )
    lines = []
    for section, keys in {
        "database": ["url"],
        "fhir": ["base_url", "write_consent"],
        "direct": [
            "dns_server",
            "smtp_host",
            "smtp_port",
            "from_address",
            "identity_cert",
            "identity_key",
            "trust_anchors",
        ],
        "pipeline": ["lease_seconds", "tick_seconds", "backoff_base"],
        "sources": ["subscriptions"],
        "server": ["secret_key"],
    }.items():
        lines.append(f"[{section}]")
        for key in keys:
            value = getattr(settings, f"{section}_{key}")
            lines.append(
                f"{key} = "
                + (str(value).lower() if isinstance(value, bool) else repr(value).replace("'", '"'))
            )
    config = tmp_path / "worker.toml"
    config.write_text("\n".join(lines) + "\n")

    core = build_sidecar(settings)
    req = parse_request(
        {
            "patient_id": world["patient"],
            "address": RECIPIENT,
            "kind": "once",
            "created_by": {"type": "clinician", "id": "dr-who"},
            "consent_method": "in_person",
        }
    )
    auth = core.consent.create(req, audit.Actor("clinician", "dr-who"))

    def worker() -> subprocess.Popen:
        # One job thread: with the short lease, a sibling thread of the same worker would take the job over
        # whenever its own send outlasts 2 s on a loaded machine (attempt 3); the takeover under test is the
        # restarted worker's, after the killed one's lease ran out.
        return subprocess.Popen(
            [sys.executable, "-m", "bbdirect.cli", "worker", "--config", str(config), "--concurrency", "1"],
            env={**os.environ, "PYTHONPATH": os.getcwd()},
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "worker.log", "ab"),
        )

    first = worker()
    try:
        assert hisp.in_data.wait(60), (tmp_path / "worker.log").read_text()
        first.send_signal(signal.SIGKILL)  # mid-send: the message is on the wire, no reply yet
        first.wait(10)
        hisp.release.set()
        with core.db.session() as s:
            [job] = s.query(Transmission).filter_by(authorization_id=auth.id).all()
            assert job.state == "sending" and job.message_id
        second = worker()
        try:
            deadline = time.monotonic() + 60
            while not hisp.accepted and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2.0)  # a second copy, if any, would arrive now
        finally:
            second.terminate()
            second.wait(15)
    finally:
        if first.poll() is None:
            first.kill()
        hisp.controller.stop()
    assert len(hisp.accepted) == 1
    assert email.message_from_bytes(hisp.accepted[0])["Message-ID"] == job.message_id
    with core.db.session() as s:
        job = s.get(Transmission, job.id)
        assert (job.state, job.attempts) == ("sent", 2)
    core.db.dispose()


def test_trust_bundles_configured_by_url_become_anchors_of_discovery(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    from direct import certgen
    from fhir_bridge.config import load_settings
    from fhir_bridge.wiring import discovery_resolver
    from tests.support.httpfiles import HttpFiles

    community = certgen.make_ca("Community Anchor")
    files = HttpFiles()
    try:
        url = files.put(
            "/bundle.p7b", pkcs7.serialize_certificates([community.cert], serialization.Encoding.DER)
        )
        settings = load_settings(
            env={},
            direct_trust_anchors=[],
            direct_trust_bundles=[url],
            direct_trust_bundles_allow_http=True,  # HttpFiles serves plain http on loopback
            direct_allow_networks=["127.0.0.0/8"],
        )
        anchors = discovery_resolver(settings).anchors()
    finally:
        files.close()
    assert [a.subject for a in anchors] == [community.cert.subject]

"""Fixtures of the browser tests: the real sidecar, the SMART server, DNS, SMTP and Debian's Chromium.

The sidecar is ``fhir_bridge.app.create_app(settings)`` with its settings read from a TOML file (``[web]``
included) and served on an ephemeral loopback port; its pipeline runs a local worker. Around it run the real
peers: HAPI (FHIR, behind the test SMART server's token-enforcing proxy), BIND9 publishing the recipients'
certificates as DNS CERT records, and the SMTP listener that plays the recipients' HISP. Screenshots of
every step go to ``test-artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.support.recipients import publish_recipients, toml_text
from tests.support.services import free_port
from tests.support.smart_launch_server import SmartServer
from tests.support.web_env import fhir_base, seed_patient, seed_record

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
#: Two clients, as OpenEMR registers them: a confidential user-role one for the EHR launch from the chart,
#: a public patient-role one for the portal's standalone launch. Each is refused the other's scopes/users.
CLIENT_ID = "bbdirect-web"
CLIENT_SECRET = "e2e-client-secret"
PATIENT_CLIENT_ID = "bbdirect-web-patient"
SENDER = "bluebutton@direct.sender.test"
#: Seconds without a processed MDN before a transmission fails (short, so the timeout case is quick).
MDN_TIMEOUT = 8

#: The recipients the tests use, by role; each trusted/rogue one gets a certificate published in DNS.
RECIPIENTS = {
    "clinic": "dr.kim@direct.clinic.test",  # trusted (chains to our anchor)
    "home": "ana.rivera@direct.home.test",  # the patient's own Direct address (trusted)
    "app": "inbox@direct.healthapp.test",  # a patient's app: valid certificate from a CA we do not trust
    "nocert": "someone@direct.nocert.test",  # nothing published
    "refuse": "records@direct.refuse.test",  # trusted, but its mail server refuses the message
    "silent": "front.desk@direct.silent.test",  # trusted, never sends a delivery notice
}


@dataclass
class World:
    smart: SmartServer
    url: str
    app: Any
    sidecar: Any
    fhir: str
    patient_id: str
    #: A second patient in the same EHR (the pages must never show or touch their sharing).
    other_patient_id: str
    smtp: Any
    identities: dict[str, Any]
    anchors: list[Any]
    #: Our sender certificate (recipients encrypt their delivery notices to it).
    sender_cert: Any
    #: Where the sidecar receives delivery notices (its inbound SMTP endpoint).
    inbound: tuple[str, int]


def _write_config(path: Path, values: dict[str, dict[str, Any]]) -> Path:
    path.write_text(toml_text(values))
    return path


@pytest.fixture(scope="session")
def web_world(request: pytest.FixtureRequest, pki, bind, smtp_server, tmp_path_factory) -> Iterator[World]:
    from fhir_bridge.app import create_app
    from fhir_bridge.config import load_settings
    from fhir_bridge.inbound import start_endpoint
    from fhir_bridge.pipeline.runner import LocalRunner

    work = tmp_path_factory.mktemp("web-e2e")
    base = fhir_base(request)
    patient_id = seed_patient(base, "Rivera", "Ana", direct=RECIPIENTS["home"])
    seed_record(base, patient_id)
    other_patient_id = seed_patient(base, "Okafor", "Olu")

    # Certificates: our sender identity, the recipients' (published in DNS), one from a CA we do not trust.
    sender = pki.address(SENDER)
    sender_cert, sender_key = pki.write(sender, "web-sender")
    inbound_port = free_port()
    anchor = pki.root_pem
    rogue_ca = pki.ca("Health App Self-Run CA")
    identities = publish_recipients(pki, bind, RECIPIENTS, rogue_ca=rogue_ca)

    smart = SmartServer(base).start()
    port = free_port()
    callback = [f"http://127.0.0.1:{port}/smart/callback"]
    smart.add_client(CLIENT_ID, callback, CLIENT_SECRET, role="user")
    smart.add_client(PATIENT_CLIENT_ID, callback, role="patient")
    smart.add_user("ana", "ana-pw", f"Patient/{patient_id}", "Ana Rivera")
    smart.add_user("drlee", "lee-pw", "Practitioner/dr-lee", "Dr. Lee")

    config = _write_config(
        work / "bbdirect.toml",
        {
            "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
            "database": {"url": f"sqlite:///{work / 'bbdirect.sqlite3'}"},
            "fhir": {"base_url": base, "auth": "none", "write_consent": False},
            "sources": {"subscriptions": False, "polling": False},
            "pipeline": {
                "debounce_seconds": 1.0,
                "mdn_timeout": MDN_TIMEOUT,
                "workers": 0,
                "tick_seconds": 0.2,
                "backoff_base": 1.0,
                "max_attempts": 2,
            },
            "direct": {
                "from_address": SENDER,
                "identity_cert": str(sender_cert),
                "identity_key": str(sender_key),
                "trust_anchors": [str(anchor)],
                "dns_server": bind.nameserver,
                "smtp_host": smtp_server.host,
                "smtp_port": smtp_server.port,
                "inbound_host": "127.0.0.1",
                "inbound_port": inbound_port,
            },
            "web": {
                "smart_client_id": CLIENT_ID,
                "smart_client_secret": CLIENT_SECRET,
                "smart_patient_client_id": PATIENT_CLIENT_ID,
                "smart_iss": smart.fhir_base,
                "smart_allowed_iss": [smart.plain_fhir_base],
                "cookie_secure": True,
            },
        },
    )
    settings = load_settings(config, env={})
    app = create_app(settings)
    sidecar = app.extensions["bbdirect"]
    # One local worker; the MDN sweep runs every second so "no delivery notice in time" shows quickly.
    runner = LocalRunner(sidecar.pipeline, threads=1, tick=0.2, sweep_every=1.0).start()
    endpoint = start_endpoint(
        sidecar.settings, sidecar.notices
    )  # the inbound SMTP endpoint for MDNs, as ``bbdirect serve`` runs it
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield World(
        smart,
        f"http://127.0.0.1:{port}",
        app,
        sidecar,
        base,
        patient_id,
        other_patient_id,
        smtp_server,
        identities,
        [pki.root.cert],
        sender.cert,
        ("127.0.0.1", inbound_port),
    )
    server.shutdown()
    endpoint.stop()
    runner.stop()
    smart.stop()


@pytest.fixture
def world(web_world: World) -> World:
    web_world.smtp.clear()
    return web_world


class Shots:
    """Numbered full-page screenshots of one test's steps."""

    def __init__(self, page: Any, name: str):
        self.page = page
        self.dir = SHOTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob("*.png"):
            old.unlink()
        self.n = 0

    def __call__(self, step: str) -> Path:
        self.n += 1
        path = self.dir / f"{self.n:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def new_page(chromium: Any, name: str, width: int = 1024) -> tuple[Any, Any]:
    context = chromium.new_context(viewport={"width": width, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    pg.shots = Shots(pg, name)
    return context, pg


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context, pg = new_page(chromium, request.node.name)
    yield pg
    context.close()


@pytest.fixture
def phone(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A 360 px wide phone viewport."""
    context, pg = new_page(chromium, request.node.name, width=360)
    yield pg
    context.close()

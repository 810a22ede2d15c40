"""Blue Button Direct next to a real OpenEMR (8.1.0, then 7.0.3), set up as the docs tell an administrator.

``oe_world`` (one per OpenEMR line):

1. OpenEMR booted, the module installed and enabled through the module manager (``openemr_with_module``);
   a patient's chart with a problem, an allergy, a medication, an encounter with vital signs and a lab result,
   entered through OpenEMR's own services, and a second patient whose sharing must stay out of reach.
2. The sidecar started as a real ``bbdirect serve`` process with the configuration of docs/sidecar.md
   ("OpenEMR as the FHIR source": SMART Backend Services as ``bbdirect-sidecar``, key and scopes left to their
   defaults, polling on, pings on), a Direct identity, DNS CERT discovery on BIND9 and SMTP to the listener
   that plays the recipients' HISP.
3. The administrator, in Chromium: Modules → Blue Button Direct → Config (the module's settings page), types the
   sidecar's URLs and API key, Save, then "Register the SMART apps now": the module fetches the sidecar's JWKS,
   registers and enables the backend client and the two SMART apps.
4. The two app client ids shown on that page go into the sidecar's ``[web]`` section, and the sidecar restarts
   (same database, keys and ports) — the last step of the docs.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.fixtures.openemr import OpenEmr
from tests.openemr.pages import sign_in
from tests.openemr.records import Chart, OpenEmrRecords
from tests.openemr.sidecar import SidecarProcess
from tests.support.recipients import publish_recipients
from tests.support.services import free_port

MODULE_URL = "/interface/modules/custom_modules/oe-module-bluebutton-direct"
SENDER = "bluebutton@direct.sender-oe.test"
#: Mail to the recipients goes to the SMTP listener; each trusted one has a certificate in DNS (CERT).
RECIPIENT_ROLES = ("home", "clinic", "app", "nocert")


def recipients(oe: OpenEmr) -> dict[str, str]:
    """Addresses per role, on domains of this OpenEMR line (both lines share one BIND and one listener)."""
    tag = oe.version.replace(".", "")
    return {
        "home": f"ana.rivera@direct.home{tag}.test",  # the patient's own address (trusted)
        "clinic": f"dr.kim@direct.clinic{tag}.test",  # a clinic (trusted)
        "app": f"inbox@direct.app{tag}.test",  # valid certificate from a CA we do not trust
        "nocert": f"someone@direct.nocert{tag}.test",  # nothing published
    }


@dataclass
class OeWorld:
    oe: OpenEmr
    sidecar: SidecarProcess
    records: OpenEmrRecords
    chart: Chart
    other: Chart
    recipients: dict[str, str]
    # What tests/e2e/flows.py needs to play the recipient (received_by, delivery_notice):
    smtp: Any
    identities: dict[str, Any]
    anchors: list[Any]
    sender_cert: Any
    inbound: tuple[str, int]
    clinician_client_id: str
    patient_client_id: str

    @property
    def url(self) -> str:
        return self.sidecar.url

    def global_value(self, name: str) -> str:
        rows = self.oe.sql(f"SELECT gl_value FROM globals WHERE gl_name='{name}'")
        return rows[0][0] if rows and rows[0] else ""


def _seed(records: OpenEmrRecords, direct_address: str) -> tuple[Chart, Chart]:
    chart = records.patient(
        "Ana", "Rivera", DOB="1975-04-02", sex="Female", email_direct=direct_address, email="ana@example.org"
    )
    records.problem(chart, "Essential hypertension", diagnosis="ICD10:I10")
    records.allergy(chart, "Sulfonamide", diagnosis="RXNORM:10180")
    records.medication(chart, "Lisinopril 10 MG Oral Tablet")
    encounter = records.encounter(chart)
    records.vitals(chart, encounter, bps="132", bpd="84", pulse="71")
    records.lab_result(chart, "2345-7", "Glucose [Mass/volume] in Serum or Plasma", "95", "mg/dL")
    other = records.patient("Olu", "Okafor", DOB="1980-02-03", sex="Male")
    return chart, other


def configure_module(page: Any, oe: OpenEmr, settings: dict[str, str]) -> str:
    """Admin → Modules → Blue Button Direct → Config: fill the settings, Save, "Register the SMART apps now".

    Returns the registration message the page shows. The Config button of the module manager opens the
    module's ``moduleConfig.php``, which leads to its settings page.
    """
    sign_in(page, oe)
    page.goto(f"{oe.url}{MODULE_URL}/moduleConfig.php")
    expect(page.locator("#bbdirect-settings-form")).to_be_visible()
    for key, value in settings.items():
        field = page.locator(f"#bbdirect-setting-{key}")
        if field.get_attribute("type") == "checkbox":
            field.set_checked(value == "1")
        else:
            field.fill(value)
    page.click("#bbdirect-settings-save")
    expect(page.locator("#bbdirect-settings-message")).to_contain_text("Settings saved")
    page.click("#bbdirect-register")
    message = page.locator("#bbdirect-settings-message")
    expect(message).to_be_visible()
    return message.inner_text()


@pytest.fixture(scope="session")
def oe_world(
    openemr_with_module: OpenEmr, pki, bind, smtp_server, chromium, tmp_path_factory
) -> Iterator[OeWorld]:
    oe = openemr_with_module
    work = tmp_path_factory.mktemp(f"oe-sidecar-{oe.version}")
    addresses = recipients(oe)
    records = OpenEmrRecords(oe)
    chart, other = _seed(records, addresses["home"])

    # Our Direct identity, the recipients' certificates in DNS, one from a CA we do not trust.
    sender = pki.address(SENDER)
    sender_cert, sender_key = pki.write(sender, f"oe-sender-{oe.version}")
    rogue_ca = pki.ca(f"Self-Run App CA {oe.version}")
    identities = publish_recipients(pki, bind, addresses, rogue_ca=rogue_ca)

    port, inbound_port = free_port(), free_port()
    api_key = secrets.token_urlsafe(32)
    sidecar_url = f"http://127.0.0.1:{port}"
    # docs/sidecar.md, "OpenEMR as the FHIR source" (plus the Direct section every deployment has).
    config: dict[str, dict[str, Any]] = {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "public_url": sidecar_url,
            "api_keys": [f"openemr:{api_key}"],
            "secret_key": secrets.token_urlsafe(32),
        },
        "database": {"url": f"sqlite:///{work / 'bbdirect.sqlite3'}"},
        "fhir": {
            "base_url": oe.fhir_base,
            "auth": "smart",
            "client_id": "bbdirect-sidecar",
            "write_consent": False,
        },
        "sources": {"subscriptions": False, "polling": True, "poll_interval": 2, "pings": True},
        "pipeline": {
            "debounce_seconds": 1.0,
            "mdn_timeout": 300,
            "workers": 1,
            "tick_seconds": 0.2,
            "backoff_base": 1.0,
            "max_attempts": 3,
        },
        "direct": {
            "from_address": SENDER,
            "identity_cert": str(sender_cert),
            "identity_key": str(sender_key),
            "trust_anchors": [str(pki.root_pem)],
            "dns_server": bind.nameserver,
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "inbound_host": "127.0.0.1",
            "inbound_port": inbound_port,
        },
        "web": {"smart_iss": oe.fhir_base, "public_url": sidecar_url},
    }
    sidecar = SidecarProcess(work, config).start()
    try:
        context = chromium.new_context()
        page = context.new_page()
        note = configure_module(
            page,
            oe,
            {
                "bbdirect_sidecar_url": sidecar_url,
                "bbdirect_api_key": api_key,
                "bbdirect_public_url": sidecar_url,
                "bbdirect_backend_client_id": "bbdirect-sidecar",
            },
        )
        context.close()
        world = OeWorld(
            oe=oe,
            sidecar=sidecar,
            records=records,
            chart=chart,
            other=other,
            recipients=addresses,
            smtp=smtp_server,
            identities=identities,
            anchors=[pki.root.cert],
            sender_cert=sender.cert,
            inbound=("127.0.0.1", inbound_port),
            clinician_client_id="",
            patient_client_id="",
        )
        world.clinician_client_id = world.global_value("bbdirect_smart_clinician_client_id")
        world.patient_client_id = world.global_value("bbdirect_smart_patient_client_id")
        assert world.clinician_client_id and world.patient_client_id, note
        # The docs' last step: the app client ids into [web], restart.
        config["web"].update(
            {
                "smart_client_id": world.clinician_client_id,
                "smart_patient_client_id": world.patient_client_id,
                "cookie_secure": False,
            }
        )
        sidecar.restart()
        yield world
    finally:
        sidecar.stop()


@pytest.fixture
def world(oe_world: OeWorld) -> OeWorld:
    oe_world.smtp.clear()
    return oe_world

"""The clinician's storyboard inside OpenEMR (8.1.0 and 7.0.3), in Chromium, against the real sidecar.

Sign in to OpenEMR → the patient's dashboard → the titled **Direct sharing** card → type the address the patient
gave → Always send → consent method + attestation → **Add & Send** → the sidecar gathers the record from
OpenEMR's FHIR API (SMART Backend Services with the client the module registered) → the message reaches the
recipient's HISP, decrypts and verifies → the recipient's MDN → the card says Delivered → **Stop sending**.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.flows import delivery_notice, received_by
from tests.openemr.ccda import ccd_of, missing_from_ccd, sections_text
from tests.openemr.pages import card, open_chart, sign_in

pytestmark = [
    pytest.mark.service("openemr"),
    pytest.mark.service("chromium"),
    pytest.mark.service("bind9"),
    pytest.mark.service("smtp"),
    pytest.mark.slow,
]


@pytest.fixture
def page(chromium: Any) -> Any:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.js_errors = []
    pg.on("pageerror", lambda exc: pg.js_errors.append(str(exc)))
    yield pg
    context.close()


#: OpenEMR's own scripts fail without its JS build (no jQuery, knockout, hotkeys; the tab frame's ``tabsList``
#: is then never set up): not ours. Anything else can only come from the card.
MISSING_ASSET = re.compile(
    r"^((\$|jQuery|ko|hotkeys|i18next|angular|moment|dlgopen) is not defined"
    r"|Cannot read properties of undefined \(reading 'tabsList'\))$"
)


def ours(errors: list[str]) -> list[str]:
    """Script errors that are not OpenEMR's missing assets (what is left can only come from the card)."""
    return [e for e in errors if not MISSING_ASSET.match(e)]


def row_for(page: Any, address: str) -> Any:
    return page.locator("#bbdirect-authorizations tbody tr", has_text=address)


def wait_for_row_state(page: Any, world: Any, address: str, label: str, timeout: float = 90.0) -> Any:
    """Reload the chart until the card's row shows ``label`` (the card renders server-side; no polling JS)."""
    deadline = time.monotonic() + timeout
    while True:
        open_chart(page, world.oe, world.chart.pid)
        state = row_for(page, address).first.locator(".bbdirect-state")
        if label in (state.inner_text() if state.count() else ""):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"row of {address} never showed {label!r}: {state.inner_text()!r}")
        time.sleep(1.0)


def add_and_send(page: Any, address: str, always: bool = True, method: str = "in_person") -> None:
    page.fill("#bbdirect-address", address)
    page.locator("#bbdirect-always").set_checked(always)
    page.check(f"#bbdirect-consent-{method}")
    page.check("#bbdirect-attest")
    page.click("#bbdirect-add-send")


def test_card_has_its_title_and_collapses(page, world) -> None:
    sign_in(page, world.oe)
    open_chart(page, world.oe, world.chart.pid)
    body = card(page)
    expect(body).to_be_visible()
    title = page.get_by_text("Direct sharing", exact=True).first
    expect(title).to_be_visible()
    title.click()  # card_base's title bar collapses the card (the module's own script without jQuery)
    expect(page.locator("#bbdirect-card")).to_be_hidden()
    title.click()
    expect(page.locator("#bbdirect-card")).to_be_visible()
    assert world.oe.php_errors() == []


def test_clinician_adds_and_sends_then_stops(page, world) -> None:
    home = world.recipients["home"]
    sign_in(page, world.oe)
    open_chart(page, world.oe, world.chart.pid)
    add_and_send(page, home)
    # The confirmation after Add & Send, on the chart the form came from.
    expect(page.locator("#bbdirect-result")).to_contain_text(f"Sharing with {home} set up")
    expect(row_for(page, home)).to_contain_text("Always")

    result = received_by(world, home, timeout=120)
    document = ccd_of(result)
    text = sections_text(document)
    assert "Rivera" in text["patient"]
    # Every part of the chart that OpenEMR's FHIR API returns for this patient is in the message.
    assert "I10" in text["problems"] or "hypertension" in text["problems"].lower()
    assert "Lisinopril" in text["medications"]
    assert "10180" in text["allergies"] or "Sulfonamide" in text["allergies"]
    assert "132" in text["vitals"] and "8480-6" in text["vitals"]
    assert "2345-7" in text["results"] and "95" in text["results"]
    # And data-driven: whatever OpenEMR's FHIR API returns for the patient is in its section of the CCD.
    returned = world.records.fhir_record(world.chart)
    kinds = {r["resourceType"] for r in returned}
    assert {"Condition", "MedicationRequest", "AllergyIntolerance", "Observation"} <= kinds
    missing = missing_from_ccd(returned, text)
    assert missing == [], "\n".join(missing)

    delivery_notice(world, home, result)
    state = wait_for_row_state(page, world, home, "Delivered")
    row = row_for(page, home)
    expect(row).not_to_contain_text("not in a trust bundle")  # it chains to the configured anchor

    row.get_by_role("button", name="Stop sending").click()
    expect(page.locator("#bbdirect-result")).to_contain_text("Sending stopped")
    expect(row_for(page, home)).to_contain_text("stopped")
    assert state is not None
    assert ours(page.js_errors) == [], sorted(set(page.js_errors))


def test_stop_sending_refuses_another_patients_authorization(page, world) -> None:
    """A posted authorization id of another patient (a forged form) is refused, and that sharing stays."""
    clinic = world.recipients["clinic"]
    others = world.sidecar.authorize(world.other.uuid, clinic, send_now=False)

    home = world.recipients["home"]
    sign_in(page, world.oe)
    open_chart(page, world.oe, world.chart.pid)
    add_and_send(page, home, always=False)
    expect(page.locator("#bbdirect-result")).to_contain_text("set up")
    stop = row_for(page, home).first.locator("form")
    stop.locator("input[name=authorization_id]").evaluate("(el, id) => { el.value = id; }", others)
    stop.get_by_role("button", name="Stop sending").click()
    expect(page.locator("#bbdirect-result")).to_contain_text("belongs to another patient")
    still = world.sidecar.api("GET", f"/api/v1/authorizations/{others}").json()["authorization"]
    assert still["revoked_at"] is None


@pytest.mark.parametrize(
    ("role", "message"),
    [
        ("syntax", "domain is not a valid host name"),
        ("nocert", "certificate"),
        ("app", "trust"),
    ],
)
def test_bad_address_is_shown_next_to_the_field_and_nothing_is_saved(page, world, role, message) -> None:
    address = "ab@direct" if role == "syntax" else world.recipients[role]
    before = world.sidecar.api("GET", f"/api/v1/patients/{world.chart.uuid}/authorizations").json()
    sign_in(page, world.oe)
    open_chart(page, world.oe, world.chart.pid)
    add_and_send(page, address)
    error = page.locator("#bbdirect-address-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(message, ignore_case=True)
    expect(page.locator("#bbdirect-address")).to_have_value(address)  # what was typed is kept
    expect(page.locator("#bbdirect-address")).to_have_attribute("aria-describedby", "bbdirect-address-error")
    after = world.sidecar.api("GET", f"/api/v1/patients/{world.chart.uuid}/authorizations").json()
    assert len(after["authorizations"]) == len(before["authorizations"])

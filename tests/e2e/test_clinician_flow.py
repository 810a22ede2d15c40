"""The clinician's storyboard in Chromium: EHR launch from the patient's chart → Patient record → Add Direct
Address (pre-filled from the patient's Direct address in FHIR) → Always send → consent method + attestation →
Add & Send → the message arrives → delivered → Stop sending; and the clinician-side errors."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import RECIPIENTS
from tests.e2e.flows import delivery_notice, launch_from_chart, received_by

pytestmark = [
    pytest.mark.service("chromium"),
    pytest.mark.service("hapi"),
    pytest.mark.service("bind9"),
    pytest.mark.service("smtp"),
]


def test_clinician_adds_and_sends_then_stops(page, world) -> None:
    home = RECIPIENTS["home"]
    launch_from_chart(page, world)
    page.shots("patient-record")
    page.click("#add-direct-address")
    # Pre-filled from Patient.telecom (the patient's Direct address on file in HAPI).
    expect(page.locator("#address")).to_have_value(home)
    expect(page.locator("#always")).to_be_checked()
    page.check("#method-clipboard")
    page.check("#attest")
    page.shots("add-direct-address")
    page.click("#add-and-send")

    expect(page.locator(".notice")).to_contain_text(f"Added {home}")
    share_id = page.url.split("#share-")[1]  # Add & Send returns to the record, at the new entry
    item = page.locator(f"#share-{share_id}")
    expect(item).to_contain_text("Always send")
    expect(item).to_contain_text("Signed paper form")
    result = received_by(world, home)
    assert any(a.filename.endswith(".xml") for a in result.attachments)
    expect(item.locator(".label")).to_have_text("Sent, waiting for the recipient to confirm")
    delivery_notice(world, home, result)
    expect(item.locator(".label")).to_have_text("Delivered (the recipient's system confirmed it)")
    page.shots("added-and-delivered")

    item.get_by_role("button", name="Stop sending").click()
    expect(page.locator(".notice")).to_contain_text(f"Stopped sending to {home}")
    expect(item).to_contain_text("stopped")
    page.shots("stopped")
    auths = world.sidecar.consent.list_for_patient(world.patient_id)
    mine = [a for a in auths if a.address == home]
    assert mine and mine[0].revoked_at is not None and mine[0].consent_method == "clipboard"
    assert mine[0].attestation and "signed consent form" in mine[0].attestation


@pytest.mark.parametrize(
    ("address", "fix", "field", "message"),
    [
        ("front desk@clinic", None, "#address-error", "This is not a valid Direct address"),
        (
            RECIPIENTS["nocert"],
            None,
            "#address-error",
            "No Direct certificate was found for direct.nocert.test",
        ),
        (
            RECIPIENTS["app"],
            None,
            "#address-error",
            "The certificate for direct.healthapp.test is not in a trust bundle we use",
        ),
        (RECIPIENTS["clinic"], "no-attest", "#attest-error", "Confirm that the patient gave this consent"),
    ],
    ids=["bad-syntax", "no-certificate", "untrusted", "no-attestation"],
)
def test_clinician_errors_keep_the_input_and_save_nothing(page, world, address, fix, field, message) -> None:
    before = len(world.sidecar.consent.list_for_patient(world.patient_id))
    launch_from_chart(page, world, shots=False)
    page.click("#add-direct-address")
    page.fill("#address", address)
    page.uncheck("#always")
    page.check("#method-in-person")
    if fix != "no-attest":
        page.check("#attest")
    page.click("#add-and-send")
    expect(page.locator(field)).to_contain_text(message)
    expect(page.locator("#address")).to_have_value(address)
    expect(page.locator("#always")).not_to_be_checked()
    expect(page.locator("#method-in-person")).to_be_checked()
    page.shots("error")
    assert len(world.sidecar.consent.list_for_patient(world.patient_id)) == before
    assert world.smtp.messages == []

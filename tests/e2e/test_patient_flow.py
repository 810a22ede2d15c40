"""The patient's storyboard in Chromium against the running sidecar, HAPI, BIND9 and the SMTP listener.

Sign in (SMART standalone launch) → Share with Direct → address → once/always → entire record or documents →
preview → Share → confirmation whose delivery state changes as the message is sent and the recipient's
delivery notice arrives, with the lock and signature icons → My sharing → Revoke. Plus every patient-side
error: bad syntax, no certificate, server refused, no delivery notice in time.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import RECIPIENTS
from tests.e2e.flows import delivery_notice, received_by, sign_in_patient

pytestmark = [
    pytest.mark.service("chromium"),
    pytest.mark.service("hapi"),
    pytest.mark.service("bind9"),
    pytest.mark.service("smtp"),
]


def _fill_share(page, address: str, kind: str = "once", documents: bool = False) -> None:
    page.click("#share-with-direct") if page.locator("#share-with-direct").count() else None
    page.fill("#address", address)
    page.check(f"#kind-{kind}")
    if documents:
        page.check("#payload-documents")
        page.check("#doc-1")
    else:
        page.check("#payload-entire")


def test_patient_shares_record_and_sees_it_delivered(page, world) -> None:
    clinic = RECIPIENTS["clinic"]
    sign_in_patient(page, world)
    page.shots("home")
    page.click("#share-with-direct")
    _fill_share(page, clinic, kind="always")
    page.shots("share-form")
    page.click("#continue")
    expect(page.locator("#summary-address")).to_have_text(clinic)
    expect(page.locator("#summary-kind")).to_have_text("Whenever the record is updated")
    expect(page.locator("#not-trusted")).to_have_count(0)  # a trusted recipient: no warning
    # The preview is the C-CDA rendered for people, with the patient's data from HAPI.
    frame = page.frame_locator("iframe.preview")
    expect(frame.locator("body")).to_contain_text("Rivera")
    expect(frame.locator("body")).to_contain_text("High blood pressure")
    page.shots("preview")
    page.click("#share")

    expect(page.locator("#share-address")).to_have_text(clinic)
    status = page.locator(".status .label")
    # The message really arrives, encrypted for the recipient and signed by us.
    result = received_by(world, clinic)
    assert any(a.filename.endswith(".xml") for a in result.attachments)
    assert b"High blood pressure" in next(a for a in result.attachments if a.filename.endswith(".xml")).data
    expect(status).to_have_text("Sent, waiting for the recipient to confirm")
    expect(page.locator(".lock-text")).to_have_text("Encrypted: only the recipient can open it.")
    expect(page.locator(".signature-text")).to_contain_text("Signed")
    expect(page.locator("[data-icon=lock] .sr-only")).to_have_text("Lock icon.")
    page.shots("confirmation-sent")
    delivery_notice(world, clinic, result)
    # The status script updates the page in place (no reload) once the delivery notice is in.
    expect(status).to_have_text("Delivered (the recipient's system confirmed it)")
    page.shots("confirmation-delivered")

    share_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.click("text=See all my sharing")
    item = page.locator(f"#share-{share_id}")
    expect(item.locator(".label")).to_have_text("Delivered (the recipient's system confirmed it)")
    page.shots("my-sharing")
    item.get_by_role("button", name="Revoke").click()
    expect(page.locator(".notice")).to_contain_text(f"Stopped sharing with {clinic}")
    expect(item).to_contain_text("stopped")
    expect(item.get_by_role("button", name="Revoke")).to_have_count(0)
    assert world.sidecar.consent.get(share_id).revoked_by_type == "patient"
    page.shots("revoked")
    assert page.console_errors == [] or all("404" not in e for e in page.console_errors)


def test_untrusted_recipient_is_said_plainly_and_still_encrypted(page, world) -> None:
    app = RECIPIENTS["app"]
    sign_in_patient(page, world, shots=False)
    page.click("#share-with-direct")
    _fill_share(page, app, kind="once", documents=True)
    page.click("#continue")
    expect(page.locator("#summary-what")).to_contain_text("Visit note")
    expect(page.locator("#chosen-documents")).to_contain_text("Visit note, May 2024 (2024-05-01)")
    expect(page.locator("iframe.preview")).to_have_count(0)  # the package, not the CCD, is what goes
    expect(page.locator("#not-trusted")).to_contain_text("Not in a trust bundle.")
    page.shots("preview-not-trusted")
    page.click("#share")
    expect(page.locator("#not-trusted")).to_contain_text("not in a trust bundle")
    result = received_by(world, app)  # encrypted for the app's certificate even though it is not trusted
    assert [a.content_type for a in result.attachments] == ["application/zip"]  # the XDM package
    expect(page.locator(".status .label")).to_have_text("Sent, waiting for the recipient to confirm")
    page.shots("confirmation-not-trusted")


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("dr.kim at clinic", "This is not a valid Direct address"),
        (RECIPIENTS["nocert"], "No Direct certificate was found for direct.nocert.test"),
    ],
    ids=["bad-syntax", "no-certificate"],
)
def test_refused_address_is_explained_next_to_the_field(page, world, address: str, message: str) -> None:
    before = world.sidecar.consent.list_for_patient(world.patient_id)
    sign_in_patient(page, world, shots=False)
    page.click("#share-with-direct")
    _fill_share(page, address, kind="always")
    page.click("#continue")
    error = page.locator("#address-error")
    expect(error).to_contain_text(message)
    expect(page.locator("#address")).to_have_value(address)  # what was typed is kept
    expect(page.locator("#address")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#kind-always")).to_be_checked()
    expect(page.locator("#error-summary")).to_be_focused()
    page.shots("error")
    assert len(world.sidecar.consent.list_for_patient(world.patient_id)) == len(before)  # nothing saved
    assert world.smtp.messages == []


def test_refusing_server_and_missing_delivery_notice_show_on_the_transmission(page, world) -> None:
    sign_in_patient(page, world, shots=False)
    # 1. The recipient's server refuses the message: a permanent SMTP failure, shown with its reply.
    world.smtp.fail_next("550 5.7.1 Recipient does not accept health records")
    page.click("#share-with-direct")
    _fill_share(page, RECIPIENTS["refuse"])
    page.click("#continue")
    page.click("#share")
    status = page.locator(".status")
    expect(status.locator(".label")).to_have_text("Not delivered", timeout=30_000)
    expect(status.locator(".reason")).to_contain_text("The recipient's mail server refused the message")
    # The server's own reply, as stored on the transmission, is quoted to the person.
    expect(status.locator(".reason")).to_contain_text("550 5.7.1 Recipient does not accept health records")
    page.shots("server-refused")

    # 2. Delivered to the server, but no delivery notice (MDN) comes back in time.
    page.goto(world.url + "/patient")
    page.click("#share-with-direct")
    _fill_share(page, RECIPIENTS["silent"])
    page.click("#continue")
    page.click("#share")
    received_by(world, RECIPIENTS["silent"])
    expect(status.locator(".label")).to_have_text("Not delivered", timeout=30_000)
    expect(status.locator(".reason")).to_contain_text("did not confirm delivery in time")
    page.shots("no-delivery-notice")

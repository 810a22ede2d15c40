"""The SMART flows through OpenEMR's own authorization server, in Chromium (8.1.0 and 7.0.3).

- Clinician, EHR launch: the chart's card → the module's launch link (OpenEMR's ``ehr-launch-client.php``) →
  OpenEMR's authorization server → the sidecar's clinician pages, for the patient whose chart was open.
- Patient: OpenEMR's portal → the **Share with Direct** tile → SMART standalone launch against OpenEMR as that
  patient → Share → Delivered (the recipient's MDN) → revoke from My sharing.

The sidecar's apps are the clients the module registered on Enable; their ids reached the sidecar's ``[web]``
section in ``oe_world`` as the docs say.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.flows import delivery_notice, received_by
from tests.openemr.pages import open_chart, sign_in

pytestmark = [
    pytest.mark.service("openemr"),
    pytest.mark.service("chromium"),
    pytest.mark.service("bind9"),
    pytest.mark.service("smtp"),
    pytest.mark.slow,
]

PORTAL_LOGIN, PORTAL_PASSWORD, PORTAL_EMAIL = "ana.rivera", "Portal-pass-1", "ana@example.org"


@pytest.fixture
def context(chromium: Any) -> Iterator[Any]:
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


def oauth_login(page: Any, username: str, password: str, role: str, email: str = "") -> None:
    """OpenEMR's own sign-in and consent pages (``/oauth2/default/provider/login``, then the scope page)."""
    expect(page.locator("input[name=username]")).to_be_visible()
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    if email and page.locator("input[name=email]").count():
        page.fill("input[name=email]", email)
    page.locator(f"button[name=user_role][value={role}]").click()
    proceed = page.locator("button[name=proceed], input[name=proceed][type=submit]")
    expect(proceed.first).to_be_visible()
    proceed.first.click()


@pytest.fixture
def smart_card(oe_world: Any) -> Iterator[None]:
    """The card in SMART mode ("Use the sidecar's pages from the chart"), as an administrator turns it on."""
    oe_world.oe.set_global("bbdirect_enable_smart", "1")
    # fhirUser is a Practitioner only for a user with an NPI (OpenEMR's UserEntity::getClaims).
    oe_world.oe.sql("UPDATE users SET npi='1234567893' WHERE username='admin'")
    yield
    oe_world.oe.set_global("bbdirect_enable_smart", "0")


def test_ehr_launch_from_the_chart_opens_the_sidecar_for_that_patient(context, world, smart_card) -> None:
    page = context.new_page()
    sign_in(page, world.oe)
    open_chart(page, world.oe, world.chart.pid)
    link = page.locator("#bbdirect-open-pages")
    expect(link).to_be_visible()
    with context.expect_page() as opened:
        link.click()
    app = opened.value
    app.wait_for_load_state()
    # Unless OpenEMR skips it for this client, its authorization server asks the clinician to sign in and allow.
    if app.locator("input[name=username]").count():
        oauth_login(app, *world.oe.admin, role="api")
    expect(app.locator("h1")).to_have_text("Patient record")
    expect(app.locator("#patient-name")).to_have_text("Ana Rivera")
    assert app.url.startswith(world.url)


def test_patient_shares_from_the_portal_and_revokes(context, world) -> None:
    oe = world.oe
    oe.tool("oe-portal-user.sh", str(world.chart.pid), PORTAL_LOGIN, PORTAL_PASSWORD, PORTAL_EMAIL)
    clinic = world.recipients["clinic"]
    page = context.new_page()
    page.goto(f"{oe.url}/portal/index.php?site=default")
    page.fill("input[name=uname]", PORTAL_LOGIN)
    page.fill("input[name=pass]", PORTAL_PASSWORD)
    if page.locator("input[name=passaddon]").count():
        page.fill("input[name=passaddon]", PORTAL_EMAIL)
    page.locator("button.btn-success[type=submit]").first.click()
    expect(page).to_have_url(re.compile(r"/portal/home\.php"))
    tile = page.locator("#inject_card #bbdirect-portal-card")
    expect(tile).to_be_visible()
    tile.click()

    # The sidecar's standalone launch sends the patient to OpenEMR's own sign-in, as a patient.
    oauth_login(page, PORTAL_LOGIN, PORTAL_PASSWORD, role="portal-api", email=PORTAL_EMAIL)
    expect(page.locator("#patient-name")).to_have_text("Ana Rivera")
    page.click("#share-with-direct")
    page.fill("#address", clinic)
    page.check("#kind-once")
    page.check("#payload-entire")
    page.click("#continue")
    expect(page.locator("#summary-address")).to_have_text(clinic)
    frame = page.frame_locator("iframe.preview")
    expect(frame.locator("body")).to_contain_text("Rivera")
    page.click("#share")

    expect(page.locator("#share-address")).to_have_text(clinic)
    result = received_by(world, clinic, timeout=120)
    assert any(a.filename.endswith(".xml") for a in result.attachments)
    delivery_notice(world, clinic, result)
    expect(page.locator(".status .label")).to_have_text("Delivered (the recipient's system confirmed it)")

    share_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.click("text=See all my sharing")
    item = page.locator(f"#share-{share_id}")
    item.get_by_role("button", name="Revoke").click()
    expect(page.locator(".notice")).to_contain_text(f"Stopped sharing with {clinic}")
    expect(item).to_contain_text("stopped")
    revoked = world.sidecar.api("GET", f"/api/v1/authorizations/{share_id}").json()["authorization"]
    assert revoked["revoked_at"] is not None


def test_ehr_launch_by_a_user_who_is_not_a_practitioner_gets_no_clinician_pages(
    context, world, smart_card
) -> None:
    """OpenEMR names a user without an NPI ``Person`` in the id_token: inside the EHR is not a clinician role."""
    world.oe.sql("UPDATE users SET npi=NULL WHERE username='admin'")
    try:
        page = context.new_page()
        sign_in(page, world.oe)
        open_chart(page, world.oe, world.chart.pid)
        with context.expect_page() as opened:
            page.locator("#bbdirect-open-pages").click()
        app = opened.value
        app.wait_for_load_state()
        if app.locator("input[name=username]").count():
            oauth_login(app, *world.oe.admin, role="api")
        expect(app.locator("#error-title")).to_have_text("Your account cannot use the clinician pages")
        expect(app.locator("#patient-name")).to_have_count(0)
    finally:
        world.oe.sql("UPDATE users SET npi='1234567893' WHERE username='admin'")


def test_openemr_logged_no_php_error_through_every_flow(world) -> None:
    """After the module's install, settings, registration, card, portal tile and launches: no PHP fatal, no
    uncaught error, no failed decryption in OpenEMR's log."""
    assert world.oe.php_errors() == []

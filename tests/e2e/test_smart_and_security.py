"""SMART sign-in edge cases and browser security, in Chromium against the running sidecar.

Denied consent, an ended session (idle timeout, expired access token), a server that is not SMART-capable,
an unknown ``iss``; PKCE S256 + state + per-resource scopes on the wire; secure/HttpOnly/SameSite session
cookie, strict CSP, CSRF refusal; no PHI in any URL; and the patient flow on a 360 px wide phone.
"""

from __future__ import annotations

import urllib.parse

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import CLIENT_ID, PATIENT_CLIENT_ID, RECIPIENTS
from tests.e2e.flows import launch_from_chart, received_by, sign_in_patient

pytestmark = [
    pytest.mark.service("chromium"),
    pytest.mark.service("hapi"),
    pytest.mark.service("bind9"),
    pytest.mark.service("smtp"),
]

#: Every visible form control has a label (WCAG 1.3.1 / 4.1.2): counted by the browser, not by our HTML.
UNLABELLED = (
    "Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea, button'))"
    ".filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')"
    " && !(el.tagName === 'BUTTON' && el.textContent.trim())).map(el => el.outerHTML)"
)


def test_denied_consent_shows_a_clear_page(page, world) -> None:
    page.goto(world.url + "/")
    page.click("#sign-in")
    page.fill("#username", "ana")
    page.fill("#password", "ana-pw")
    page.click("#deny")
    expect(page.locator("#error-title")).to_have_text("You did not allow access")
    expect(page.locator("main")).to_contain_text("Nothing was shared")
    page.shots("denied")


def test_ended_session_says_so(page, world) -> None:
    sign_in_patient(page, world, shots=False)
    sessions = world.app.session_interface
    idle = sessions.idle
    sessions.idle = 0.0  # the idle limit passes: the next request finds the session ended
    try:
        page.goto(world.url + "/patient/sharing")
    finally:
        sessions.idle = idle
    expect(page.locator("#error-title")).to_have_text("Your session has ended")
    page.shots("session-ended")
    # Signed in again, then the EHR's access token expires: the pages say the same, never show an error dump.
    sign_in_patient(page, world, shots=False)
    world.smart.expire_all_tokens()
    page.goto(world.url + "/patient")
    expect(page.locator("#error-title")).to_have_text("Your session has ended")


def test_server_that_is_not_smart_capable(page, world) -> None:
    query = urllib.parse.urlencode({"iss": world.smart.plain_fhir_base, "launch": "x"})
    page.goto(f"{world.url}/smart/launch?{query}")
    expect(page.locator("#error-title")).to_have_text("This health record system cannot sign you in here")
    page.shots("not-smart")
    query = urllib.parse.urlencode({"iss": "http://127.0.0.1:9/fhir", "launch": "x"})
    page.goto(f"{world.url}/smart/launch?{query}")
    expect(page.locator("#error-title")).to_have_text("Unknown health record system")


def test_authorize_request_is_smart_2(page, world) -> None:
    world.smart.authorize_requests.clear()
    launch_from_chart(page, world, shots=False)
    page.click("#add-direct-address")
    assert page.evaluate(UNLABELLED) == []
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#sign-in")).to_be_visible()
    sign_in_patient(page, world, shots=False)
    ehr, patient = world.smart.authorize_requests[-2:]
    for params in (ehr, patient):
        assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
        assert len(params["state"]) >= 22 and params["aud"] == world.smart.fhir_base
        scopes = params["scope"].split()
        assert {"openid", "fhirUser"} <= set(scopes) and not any("*" in s for s in scopes)
    assert ehr["launch"] and "launch" in ehr["scope"].split() and "user/Observation.read" in ehr["scope"]
    assert "launch/patient" in patient["scope"].split() and "patient/Observation.read" in patient["scope"]
    # Two registered clients, as OpenEMR has them: the user-role one from the chart, the patient-role one
    # from the portal (each refused the other's scopes by the server, so a mix-up would fail sign-in).
    assert ehr["client_id"] == CLIENT_ID and patient["client_id"] == PATIENT_CLIENT_ID


def test_each_smart_client_is_refused_the_other_role(page, world) -> None:
    """The test server really separates the clients: the patient client cannot sign a clinician in."""
    page.goto(world.url + "/")
    page.click("#sign-in")
    page.fill("#username", "drlee")  # a clinician account on the patients' (standalone) client
    page.fill("#password", "lee-pw")
    page.click("#allow")
    expect(page.locator("main, body").first).to_contain_text("not for your kind of account")
    assert world.smart.authorize_requests[-1]["client_id"] == PATIENT_CLIENT_ID


def test_cookies_headers_csrf_and_no_phi_in_urls(page, world) -> None:
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url) if r.url.startswith(world.url) else None)
    sign_in_patient(page, world, shots=False)
    page.click("#share-with-direct")
    assert page.evaluate(UNLABELLED) == []
    page.fill("#address", RECIPIENTS["clinic"])
    page.check("#kind-once")
    with page.expect_navigation() as answer:
        page.click("#continue")
    headers = answer.value.headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert headers["cache-control"] == "no-store" and headers["x-content-type-options"] == "nosniff"
    page.click("#share")
    received_by(world, RECIPIENTS["clinic"])

    (cookie,) = [c for c in page.context.cookies() if c["name"] == "bbd_session"]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax" and cookie["expires"] == -1
    # The session lives in the sidecar's database (shared by its processes), found by the cookie's id only.
    from fhir_bridge.web.session_backends import SqlBackend

    backend = world.app.session_interface.backend
    assert isinstance(backend, SqlBackend)
    assert backend.load(cookie["value"]).data["smart"]["patient"] == world.patient_id
    # Nothing about the patient in any URL the sidecar served: no id, no name, no Direct address.
    for url in urls:
        assert world.patient_id not in url.split("?")[0].split("/") and "Rivera" not in url
        assert "%40" not in url and "@" not in url
    # A form posted without its CSRF token is refused and changes nothing.
    before = len(world.sidecar.consent.list_for_patient(world.patient_id))
    refused = page.request.post(
        world.url + "/patient/share", form={"address": RECIPIENTS["clinic"], "kind": "once"}
    )
    assert refused.status == 400 and "Please try again" in refused.text()
    assert len(world.sidecar.consent.list_for_patient(world.patient_id)) == before


def test_patient_flow_on_a_360px_phone(phone, world) -> None:
    page = phone
    sign_in_patient(page, world)
    page.shots("home-phone")
    page.click("#share-with-direct")
    page.fill("#address", "not an address")
    page.check("#kind-once")
    page.click("#continue")
    expect(page.locator("#address-error")).to_be_visible()
    page.shots("error-phone")
    page.fill("#address", RECIPIENTS["clinic"])
    page.click("#continue")
    page.click("#share")
    expect(page.locator(".status .label")).to_have_text("Sent, waiting for the recipient to confirm")
    page.shots("confirmation-phone")
    # Nothing is wider than the screen: no sideways scrolling on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    # Keyboard only: the skip link is the first stop and leads to the main content.
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()


def test_without_javascript_the_refresh_link_updates_the_status(chromium, world) -> None:
    from tests.e2e.conftest import Shots
    from tests.e2e.flows import delivery_notice

    context = chromium.new_context(viewport={"width": 1024, "height": 800}, java_script_enabled=False)
    page = context.new_page()
    page.shots = Shots(page, "no-javascript")
    try:
        sign_in_patient(page, world, shots=False)
        page.click("#share-with-direct")
        page.fill("#address", RECIPIENTS["clinic"])
        page.check("#kind-once")
        page.click("#continue")
        page.click("#share")
        result = received_by(world, RECIPIENTS["clinic"])
        label = page.locator(".status .label")
        expect(label).not_to_have_text("Delivered (the recipient's system confirmed it)")
        delivery_notice(world, RECIPIENTS["clinic"], result)
        page.click("#refresh")
        expect(label).to_have_text("Delivered (the recipient's system confirmed it)")
        page.shots("refreshed-without-javascript")
    finally:
        context.close()


def test_a_patient_cannot_see_or_revoke_someone_elses_sharing(page, world) -> None:
    from fhir_bridge.audit import Actor
    from fhir_bridge.consent.model import AuthorizationRequest

    other_ref = f"Patient/{world.other_patient_id}"
    other = world.sidecar.consent.create(  # the other patient's own authorization (nothing sent)
        AuthorizationRequest(
            world.other_patient_id,
            RECIPIENTS["clinic"],
            "always",
            "patient",
            other_ref,
            "portal",
            send_now=False,
        ),
        Actor("patient", other_ref),
    )
    sign_in_patient(page, world, shots=False)
    page.goto(f"{world.url}/patient/sharing/{other.id}")
    expect(page.locator("#error-title")).to_have_text("Not found")
    assert page.request.get(f"{world.url}/sharing/{other.id}/status").status == 404
    page.goto(world.url + "/patient/sharing")
    expect(page.locator(f"#share-{other.id}")).to_have_count(0)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(f"{world.url}/patient/sharing/{other.id}/revoke", form={"csrf_token": token})
    assert answer.status == 404
    assert world.sidecar.consent.get(other.id).revoked_at is None


def test_share_form_works_with_the_keyboard_alone(page, world) -> None:
    sign_in_patient(page, world, shots=False)
    page.click("#share-with-direct")
    page.focus("#address")
    page.keyboard.type("not valid")
    page.keyboard.press("Tab")
    expect(page.locator("#kind-once")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("#kind-once")).to_be_checked()
    page.keyboard.press("Enter")  # submits the form from a radio button
    # The error summary takes the focus; its link leads back to the field.
    expect(page.locator("#error-summary")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#error-summary a")).to_be_focused()
    page.keyboard.press("Enter")
    page.locator("#address").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type(RECIPIENTS["clinic"])
    page.keyboard.press("Enter")
    expect(page.locator("#summary-address")).to_have_text(RECIPIENTS["clinic"])
    page.locator("#share").focus()
    expect(page.locator("#share")).to_be_focused()

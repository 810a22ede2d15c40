"""Every page of both flows checked by axe-core (WCAG 2.0/2.1 A and AA) in Chromium, desktop and 360 px phone.

Why a tool on top of the hand-written checks: contrast, names of controls, landmarks and ARIA misuse are
easy to get wrong and tedious to check by eye on every state (errors, failed delivery, the preview). axe-core
comes from npm (``tests/e2e/node``, installed by ``scripts/setup.sh``) and is injected with Playwright's
``add_script_tag``; these contexts bypass our CSP only so the injected script may run (the strict policy is
tested elsewhere with it enforced). The SMART server's sign-in page is the test server's, not ours: skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import RECIPIENTS, Shots
from tests.e2e.flows import assert_accessible, axe_violations, launch_from_chart, sign_in_patient

pytestmark = [
    pytest.mark.service("chromium"),
    pytest.mark.service("hapi"),
    pytest.mark.service("bind9"),
    pytest.mark.service("smtp"),
]


def _context(chromium: Any, name: str, width: int) -> tuple[Any, Any]:
    context = chromium.new_context(viewport={"width": width, "height": 800}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.shots = Shots(page, name)
    return context, page


@pytest.fixture
def axe_page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context, page = _context(chromium, request.node.name, 1024)
    yield page
    context.close()


@pytest.fixture
def axe_phone(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context, page = _context(chromium, request.node.name, 360)
    yield page
    context.close()


def _patient_walk(page: Any, world: Any) -> None:
    """Landing → home → share form → its errors → preview (+ the rendered C-CDA) → a failed delivery → lists."""
    page.goto(world.url + "/")
    assert_accessible(page, "landing")
    sign_in_patient(page, world, shots=False)
    assert_accessible(page, "home")
    page.click("#share-with-direct")
    assert_accessible(page, "share form")
    page.fill("#address", "not an address")
    page.click("#continue")
    expect(page.locator("#error-summary")).to_be_visible()
    assert_accessible(page, "share form with errors")
    page.fill("#address", RECIPIENTS["refuse"])
    page.check("#kind-always")
    page.check("#payload-entire")
    page.click("#continue")
    expect(page.locator("#summary-address")).to_have_text(RECIPIENTS["refuse"])
    assert_accessible(page, "preview")
    preview = page.locator("iframe.preview").get_attribute("src")
    world.smtp.fail_next("550 5.7.1 Recipient does not accept health records")
    page.click("#share")
    expect(page.locator(".status .label")).to_have_text("Not delivered", timeout=30_000)
    assert_accessible(page, "confirmation, not delivered")
    page.click("text=See all my sharing")
    assert_accessible(page, "my sharing")
    # The C-CDA rendered for people, as a page of its own (in the iframe it runs no scripts, axe included).
    page.goto(world.url + preview)
    expect(page.locator("body")).to_contain_text("Rivera")
    assert_accessible(page, "preview document")
    page.goto(world.url + "/patient/sharing/no-such-id")
    expect(page.locator("#error-title")).to_have_text("Not found")
    assert_accessible(page, "error page")


def test_patient_pages_have_no_axe_violations(axe_page, world) -> None:
    _patient_walk(axe_page, world)


def test_patient_pages_on_a_360px_phone_have_no_axe_violations(axe_phone, world) -> None:
    _patient_walk(axe_phone, world)
    assert axe_phone.evaluate("document.documentElement.scrollWidth") <= 360


def test_clinician_pages_have_no_axe_violations(axe_page, world) -> None:
    page = axe_page
    launch_from_chart(page, world, shots=False)
    assert_accessible(page, "patient record")
    page.click("#add-direct-address")
    assert_accessible(page, "add direct address")
    page.fill("#address", RECIPIENTS["app"])  # not trusted: refused for a clinician, with an error
    page.click("#add-and-send")
    expect(page.locator("#error-summary")).to_be_visible()
    assert_accessible(page, "add direct address with errors")
    page.fill("#address", RECIPIENTS["clinic"])
    page.check("#method-in-person")
    page.check("#attest")
    page.click("#add-and-send")
    expect(page.locator(".notice")).to_contain_text("Added")
    assert_accessible(page, "patient record with sharing")
    # The check can fail: an unlabelled field and low-contrast text put into the page are caught.
    page.evaluate(
        "document.querySelector('main').insertAdjacentHTML('beforeend',"
        ' \'<input id="bare" type="text"><p style="color:#aaa">faint</p>\')'
    )
    found = " ".join(axe_violations(page))
    assert "label (critical)" in found and "color-contrast (serious)" in found

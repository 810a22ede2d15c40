"""Steps shared by the browser tests: signing in through the SMART server, and playing the recipient."""

from __future__ import annotations

import smtplib
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from direct.mdn import build_mdn
from direct.smime.identity import Identity
from direct.smime.seal import seal, unseal
from tests.support.services import unavailable


def sign_in_patient(page: Any, world: Any, shots: bool = True) -> None:
    """Standalone patient launch: the start page → the portal's sign-in → Allow → the patient's home."""
    page.goto(world.url + "/")
    if shots:
        page.shots("landing")
    page.click("#sign-in")
    expect(page.locator("h1")).to_contain_text("Sign in")
    if shots:
        page.shots("portal-sign-in")
    page.fill("#username", "ana")
    page.fill("#password", "ana-pw")
    page.click("#allow")
    expect(page.locator("#patient-name")).to_have_text("Ana Rivera")


def launch_from_chart(page: Any, world: Any, shots: bool = True) -> None:
    """EHR launch: the EHR chart's app link (iss + launch) → the EHR's sign-in → Allow → Patient record."""
    chart = (
        f"{world.smart.base_url}/ehr/chart?patient={world.patient_id}&user=drlee&app={world.url}/smart/launch"
    )
    page.goto(chart)
    page.click("#launch-app")
    expect(page.locator("h1")).to_contain_text("Sign in")
    page.fill("#username", "drlee")
    page.fill("#password", "lee-pw")
    page.click("#allow")
    expect(page.locator("h1")).to_have_text("Patient record")
    expect(page.locator("#patient-name")).to_have_text("Ana Rivera")


def received_by(world: Any, address: str, timeout: float = 30.0) -> Any:
    """Wait for the message to ``address`` at the SMTP listener; open it as the recipient would."""
    messages = world.smtp.wait_for(1, timeout)
    mine = [m for m in messages if address in m.rcpt_tos]
    assert mine, f"no message to {address}"
    msg = mine[-1]
    result = unseal(
        msg.data,
        [Identity.from_issued(world.identities[address])],
        world.anchors,
        mail_from=msg.mail_from,
        rcpt_tos=msg.rcpt_tos,
    )
    assert result.error is None and result.decrypted and result.signature == "valid", result.error
    return result


def delivery_notice(world: Any, address: str, result: Any, disposition: str = "processed") -> None:
    """The recipient's HISP answers: a signed and encrypted MDN, over SMTP, to the sidecar's inbound endpoint."""
    mdn = build_mdn(
        original_message_id=result.message_id,
        original_sender=result.from_addr or "",
        final_recipient=address,
        disposition=disposition,
    )
    raw = seal(mdn, Identity.from_issued(world.identities[address]), [world.sender_cert])
    with smtplib.SMTP(*world.inbound, timeout=30) as smtp:
        smtp.sendmail(address, [result.from_addr], raw)


# --- accessibility: axe-core (npm, tests/e2e/node) run inside Chromium -----------------------------------
AXE_SCRIPT = Path(__file__).resolve().parent / "node" / "node_modules" / "axe-core" / "axe.min.js"
#: WCAG 2.0 and 2.1, levels A and AA (axe's own tags), plus axe's best practices for landmarks and headings.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_TAGS = [*WCAG_TAGS, "best-practice"]
_AXE_RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations'],
                                          iframes: false});
  return result.violations.map(v => `${v.id} (${v.impact}): ${v.help} -- ` +
    v.nodes.map(n => n.target.join(' ') + ' ' + (n.failureSummary || '').replace(/\\s+/g, ' ')).join(' | '));
}"""


def axe_violations(page: Any, tags: list[str] = AXE_TAGS) -> list[str]:
    """axe-core's violations of ``tags`` on the page as it is now (script injected with add_script_tag).

    The page's context must bypass CSP (``bypass_csp=True``): our strict policy rightly refuses the injected
    script. The preview iframe is sandboxed without scripts, so it is checked as a page of its own.
    """
    if not AXE_SCRIPT.is_file():
        unavailable(f"axe-core not installed in {AXE_SCRIPT.parent.parent.parent} (run scripts/setup.sh)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_SCRIPT))
    return page.evaluate(_AXE_RUN, tags)


def assert_accessible(page: Any, where: str, tags: list[str] = AXE_TAGS) -> None:
    found = axe_violations(page, tags)
    assert found == [], f"{where} ({page.url}):\n" + "\n".join(found)

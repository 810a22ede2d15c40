"""*Always send* against real OpenEMR: a change made in OpenEMR reaches the recipient as a new message.

The changes go through OpenEMR's own services (the REST API the screens share), so the module's listeners see
exactly the events OpenEMR fires for them. Where OpenEMR fires an event the module pings the sidecar; where it
fires none (7.0.3: problems, medications) the sidecar's ``_lastUpdated`` polling finds the change. Either way
the recipient's newest message must carry the new value.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from direct.smime.identity import Identity
from direct.smime.seal import unseal
from tests.e2e.flows import delivery_notice
from tests.openemr.ccda import ccd_of, sections_text

pytestmark = [
    pytest.mark.service("openemr"),
    pytest.mark.service("bind9"),
    pytest.mark.service("smtp"),
    pytest.mark.slow,
]


def opened(world: Any, message: Any) -> Any:
    result = unseal(
        message.data,
        [Identity.from_issued(world.identities[message.rcpt_tos[0]])],
        world.anchors,
        mail_from=message.mail_from,
        rcpt_tos=message.rcpt_tos,
    )
    assert result.error is None and result.signature == "valid", result.error
    return result


def next_message_with(
    world: Any, address: str, seen: int, section: str, *needles: str, timeout: float = 90
) -> Any:
    """The first message to ``address`` after the ``seen`` first ones whose ``section`` has one of ``needles``."""
    deadline = time.monotonic() + timeout
    checked = seen
    while True:
        messages = [m for m in world.smtp.messages if address in m.rcpt_tos]
        for message in messages[checked:]:
            checked += 1
            result = opened(world, message)
            text = sections_text(ccd_of(result))[section]
            if any(needle in text for needle in needles):
                return result
        if time.monotonic() > deadline:
            raise AssertionError(f"no message to {address} with {needles!r} in {section} after {timeout}s")
        time.sleep(0.5)


def count_to(world: Any, address: str) -> int:
    return sum(address in m.rcpt_tos for m in world.smtp.messages)


def test_changes_in_openemr_are_sent_to_an_always_recipient(world) -> None:
    clinic = world.recipients["clinic"]
    authorization = world.sidecar.authorize(world.chart.uuid, clinic, send_now=True)
    first = next_message_with(world, clinic, 0, "patient", "Rivera")
    delivery_notice(world, clinic, first)
    try:
        # Demographics: PatientService::update() fires patient.updated on both lines → the module's ping.
        seen = count_to(world, clinic)
        world.records.update_demographics(world.chart, city="Springfield", postal_code="62704")
        next_message_with(world, clinic, seen, "patient", "Springfield")

        # A vital sign: the vitals service fires service.save.* on both lines → ping.
        seen = count_to(world, clinic)
        encounter = world.records.encounter(world.chart, date="2026-12-05", reason="Follow-up")
        world.records.vitals(world.chart, encounter, bps="147", bpd="91")
        next_message_with(world, clinic, seen, "vitals", 'value="147"')

        # A new problem and a new medication: 7.0.3 fires nothing for these (polling finds them); 8.1 pings.
        seen = count_to(world, clinic)
        world.records.problem(world.chart, "Type 2 diabetes mellitus", diagnosis="ICD10:E11.9")
        # 8.1's FHIR Condition carries an ICD-10 problem as text only; 7.0.3 carries the code.
        next_message_with(world, clinic, seen, "problems", "E11.9", "Type 2 diabetes mellitus")
        seen = count_to(world, clinic)
        world.records.medication(world.chart, "Metformin 500 MG Oral Tablet")
        next_message_with(world, clinic, seen, "medications", "Metformin")
    finally:
        world.sidecar.api("POST", f"/api/v1/authorizations/{authorization}/revoke", json={"by": "admin"})

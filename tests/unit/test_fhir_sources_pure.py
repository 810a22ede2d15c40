"""The pure parts of the FHIR side: capability parsing, shape checks, compartment mapping, pings, dedup."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhir_bridge.fhir import shapes
from fhir_bridge.fhir.client import Capabilities, FhirClient, _retry_after
from fhir_bridge.fhir.errors import FhirInvalidResponse
from fhir_bridge.sources.compartment import patient_of
from fhir_bridge.sources.dedup import ChangeFanIn
from fhir_bridge.sources.events import ChangeEvent
from fhir_bridge.sources.pings import PingError, ping_event
from fhir_bridge.sources.polling import format_instant, parse_instant
from fhir_bridge.sources.subscription import SECRET_HEADER, SubscriptionManager

#: A server with no Subscription and no $everything, _lastUpdated on some types only and system $export. (Not
#: OpenEMR's real shape, which has _lastUpdated on every type and no system $export: see
#: tests/unit/test_openemr_profile.py.)
MIXED_SERVER = {
    "resourceType": "CapabilityStatement",
    "fhirVersion": "4.0.1",
    "software": {"name": "OpenEMR"},
    "rest": [
        {
            "mode": "server",
            "security": {
                "extension": [
                    {
                        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                        "extension": [
                            {"url": "token", "valueUri": "https://emr.example/oauth2/default/token"}
                        ],
                    }
                ]
            },
            "resource": [
                {
                    "type": "Patient",
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "searchParam": [{"name": "_id"}, {"name": "_lastUpdated"}],
                },
                {
                    "type": "Observation",
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "searchParam": [{"name": "patient"}, {"name": "category"}],
                },
                {"type": 7},
            ],
            "operation": [
                {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}
            ],
        }
    ],
}


def test_capabilities_of_a_mixed_server() -> None:
    caps = Capabilities.from_statement(MIXED_SERVER)

    assert caps.software == "OpenEMR" and caps.fhir_version == "4.0.1"
    assert not caps.has_subscriptions and not caps.has_patient_everything
    assert caps.has_system_export
    assert caps.supports_last_updated("Patient") and not caps.supports_last_updated("Observation")
    assert caps.can_search("Observation", "patient") and not caps.can("Observation", "create")
    assert caps.token_url == "https://emr.example/oauth2/default/token"


def test_retry_after_forms() -> None:
    assert _retry_after("7") == 7.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert _retry_after("soon") is None and _retry_after(None) is None


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"id": "1"},
        {"resourceType": "patient", "id": "1"},
        {"resourceType": "Patient", "id": "a b"},
        {"resourceType": "Patient", "id": "1", "meta": "x"},
        {"resourceType": "Observation", "id": "1", "subject": {"reference": 42}},
    ],
)
def test_malformed_resources_are_refused(bad: object) -> None:
    with pytest.raises(FhirInvalidResponse):
        shapes.check_resource(bad)


def test_bundle_entries_are_checked() -> None:
    with pytest.raises(FhirInvalidResponse):
        shapes.check_bundle({"resourceType": "Bundle", "entry": ["not an entry"]})
    bundle = shapes.check_bundle(
        {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "1"}}]}
    )
    assert shapes.bundle_resources(bundle)[0]["id"] == "1"


def test_references_are_parsed_only_when_local_and_literal() -> None:
    base = "http://fhir.example/r4"
    assert shapes.parse_reference("Patient/12", base) == ("Patient", "12")
    assert shapes.parse_reference("http://fhir.example/r4/Patient/12/_history/3", base) == ("Patient", "12")
    assert shapes.parse_reference("http://elsewhere.example/Patient/12", base) is None
    assert shapes.parse_reference("#contained", base) is None
    assert shapes.parse_reference("Patient?identifier=x|1", base) is None


def test_patient_of_follows_the_compartment() -> None:
    assert patient_of({"resourceType": "Patient", "id": "p1"}) == "p1"
    assert patient_of({"resourceType": "Observation", "subject": {"reference": "Patient/p2"}}) == "p2"
    assert patient_of({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p3"}}) == "p3"
    assert patient_of({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p4"}}) == "p4"
    assert patient_of({"resourceType": "Observation", "subject": {"reference": "Group/g1"}}) is None
    assert patient_of({"resourceType": "Practitioner", "id": "d1"}) is None


def test_pings_are_validated() -> None:
    bare = ping_event("p-1")
    assert (bare.patient_id, bare.source, bare.resource_type, bare.identity()) == ("p-1", "ping", None, None)
    named = ping_event("p1", {"resource_type": "Observation", "resource_id": "o1", "version": "2"})
    assert (named.resource_type, named.resource_id, named.version) == ("Observation", "o1", "2")
    for patient, body, code in [
        ("../etc", None, "bad_patient_id"),
        ("p1", [], "bad_body"),
        ("p1", {"evil": 1}, "bad_body"),
        ("p1", {"resource_type": "observation"}, "bad_resource_type"),
        ("p1", {"resource_id": "o1"}, "bad_body"),
        ("p1", {"resource_type": "Observation", "resource_id": "o 1"}, "bad_resource_id"),
    ]:
        with pytest.raises(PingError) as err:
            ping_event(patient, body)
        assert err.value.code == code


def test_fan_in_passes_each_change_once_within_the_window() -> None:
    now = [0.0]
    passed: list[ChangeEvent] = []
    fan_in = ChangeFanIn(passed.append, window=60, clock=lambda: now[0])
    change = ChangeEvent("p1", "subscription", "Observation", "o1", version="1")

    fan_in(change)
    fan_in(ChangeEvent("p1", "polling", "Observation", "o1", version="1"))
    fan_in(ChangeEvent("p1", "polling", "Observation", "o1", version="2"))
    fan_in(ChangeEvent("p1", "ping"))
    fan_in(ChangeEvent("p1", "ping"))
    now[0] = 61.0
    fan_in(ChangeEvent("p1", "polling", "Observation", "o1", version="1"))

    assert [(e.source, e.version) for e in passed] == [
        ("subscription", "1"),
        ("polling", "2"),
        ("ping", None),
        ("ping", None),
        ("polling", "1"),
    ]
    assert fan_in.dropped == 1


def test_instants_round_trip_in_utc() -> None:
    instant = parse_instant("2024-03-01T10:00:00.123+02:00")
    assert instant == datetime(2024, 3, 1, 8, 0, 0, 123000, tzinfo=UTC)
    assert format_instant(instant) == "2024-03-01T08:00:00.123Z"
    with pytest.raises(ValueError):
        parse_instant("2024-03-01T10:00:00")


def test_subscription_declaration_and_match() -> None:
    manager = SubscriptionManager(
        FhirClient("http://fhir.example/r4"), "http://sidecar.example/hooks/", "s3cret"
    )
    wanted = manager.desired("Observation")

    assert wanted["criteria"] == "Observation?"
    assert wanted["channel"]["endpoint"] == "http://sidecar.example/hooks"
    assert wanted["channel"]["header"] == [f"{SECRET_HEADER}: s3cret"]
    assert manager.matches(dict(wanted, status="active"), "Observation")
    assert not manager.matches(dict(wanted, status="error"), "Observation")
    assert not manager.matches(wanted, "Condition")
    rotated = SubscriptionManager(FhirClient("http://fhir.example/r4"), "http://sidecar.example/hooks", "new")
    assert not rotated.matches(wanted, "Observation")
    with pytest.raises(ValueError):
        SubscriptionManager(FhirClient("http://fhir.example/r4"), "http://sidecar.example/hooks", "a\r\nb")


def test_polling_plan_mixes_last_updated_and_export_on_a_mixed_server(tmp_path) -> None:
    from fhir_bridge.sources.polling import JsonWatermarkStore, Poller

    client = FhirClient("http://emr.example/fhir")
    client._capabilities = Capabilities.from_statement(MIXED_SERVER)  # what GET /metadata would have said
    store = JsonWatermarkStore(tmp_path / "wm.json")

    auto = Poller(client, store, print, resource_types=["Patient", "Observation", "Condition"])
    searches_only = Poller(
        client, store, print, mode="last_updated", resource_types=["Patient", "Observation"]
    )

    assert auto.plan() == (["Patient"], ["Observation"])  # Condition: not on this server
    assert auto.effective_mode() == "mixed"
    assert searches_only.plan() == (["Patient"], [])


def test_own_writes_are_not_watched_by_default() -> None:
    from fhir_bridge.sources.subscription import DEFAULT_RESOURCE_TYPES

    assert "Consent" not in DEFAULT_RESOURCE_TYPES and "AuditEvent" not in DEFAULT_RESOURCE_TYPES
    assert {"Patient", "Observation", "AllergyIntolerance", "MedicationRequest"} <= set(
        DEFAULT_RESOURCE_TYPES
    )

"""gather_patient_record against the real HAPI server, loaded with a synthetic Synthea bundle."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from fhir_bridge.fhir.client import FhirClient
from fhir_bridge.fhir.gather import gather_patient_record
from tests.fixtures.hapi import HapiServer

pytestmark = pytest.mark.service("hapi")

_CANDIDATES = [
    Path(__file__).parents[1] / "data" / "fhir",
    Path(__file__).parents[3] / "shared" / "data" / "fhir",
]
BUNDLE = "synthea24_clemente_kreiger_small.json"


def _load_bundle(name: str) -> dict:
    for folder in _CANDIDATES:
        if (folder / name).exists():
            return json.loads((folder / name).read_text())
    pytest.fail(f"test bundle {name} not found in {_CANDIDATES}")


@pytest.fixture(scope="module")
def loaded(hapi: HapiServer) -> tuple[str, Counter]:
    """The bundle stored on HAPI as one transaction: (server id of the Patient, count of types sent)."""
    bundle = _load_bundle(BUNDLE)
    response = hapi.transaction(bundle)
    patient_entry = next(
        r
        for e, r in zip(bundle["entry"], response["entry"], strict=True)
        if e["resource"]["resourceType"] == "Patient"
    )
    patient_id = patient_entry["response"]["location"].split("/")[1]
    return patient_id, Counter(e["resource"]["resourceType"] for e in bundle["entry"])


def _types(resources: list[dict]) -> Counter:
    return Counter(r["resourceType"] for r in resources)


def test_everything_returns_the_whole_record(hapi: HapiServer, loaded: tuple[str, Counter]) -> None:
    patient_id, sent = loaded

    record = gather_patient_record(FhirClient(hapi.base_url), patient_id, use_everything=True)

    assert record[0]["resourceType"] == "Patient" and record[0]["id"] == patient_id
    assert _types(record) == sent
    assert len({(r["resourceType"], r["id"]) for r in record}) == len(record)


def test_per_resource_searches_return_the_us_core_record(
    hapi: HapiServer, loaded: tuple[str, Counter]
) -> None:
    """The OpenEMR path: no $everything, one search per US Core type, then the referenced shared resources."""
    patient_id, sent = loaded

    record = gather_patient_record(FhirClient(hapi.base_url), patient_id, use_everything=False)

    expected = Counter({t: n for t, n in sent.items() if t not in {"Claim", "ExplanationOfBenefit"}})
    assert _types(record) == expected  # Practitioner + Organization come from the Encounters' references
    assert record[0]["id"] == patient_id


def test_strategy_is_picked_from_the_capability_statement(
    hapi: HapiServer, loaded: tuple[str, Counter]
) -> None:
    patient_id, sent = loaded
    client = FhirClient(hapi.base_url)

    record = gather_patient_record(client, patient_id)

    assert client.capabilities().has_patient_everything
    assert _types(record) == sent


def test_both_strategies_agree_on_a_us_core_record_with_client_ids(hapi: HapiServer) -> None:
    """Inferno's US Core patient 85 (client-assigned ids, PUT entries, many types): the per-resource searches
    find every US Core resource that $everything finds."""
    from fhir_bridge.fhir.gather import REFERENCED_TYPES, US_CORE_PATIENT_SEARCHES

    bundle = _load_bundle("inferno_uscore_patient85_lucien_bosco.json")
    hapi.transaction(bundle)
    patient_id = next(
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    client = FhirClient(hapi.base_url)

    everything = gather_patient_record(client, patient_id, use_everything=True)
    searched = gather_patient_record(client, patient_id, use_everything=False)

    wanted = {t for t, _ in US_CORE_PATIENT_SEARCHES} | REFERENCED_TYPES | {"Patient"}
    keys = lambda rs: {(r["resourceType"], r["id"]) for r in rs}  # noqa: E731
    assert keys(searched) == {k for k in keys(everything) if k[0] in wanted}
    assert _types(everything) == Counter(e["resource"]["resourceType"] for e in bundle["entry"])

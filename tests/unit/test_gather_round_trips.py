"""How many FHIR round trips one record costs on a server with ``Patient/$everything`` (HAPI)."""

from __future__ import annotations

from typing import Any

from fhir_bridge.fhir.client import FhirClient
from fhir_bridge.fhir.gather import gather_patient_record
from tests.unit.test_openemr_profile import ScriptedSession, _bundle

EVERYTHING_STATEMENT: dict[str, Any] = {
    "resourceType": "CapabilityStatement",
    "fhirVersion": "4.0.1",
    "rest": [
        {
            "mode": "server",
            "resource": [
                {
                    "type": "Patient",
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "operation": [{"name": "everything"}],
                },
                {"type": "Practitioner", "interaction": [{"code": "read"}]},
            ],
        }
    ],
}
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "generalPractitioner": [{"reference": "Practitioner/dr1"}],
}
CONDITION = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}
DOCTOR = {"resourceType": "Practitioner", "id": "dr1"}


def _client(answers: dict[str, Any]) -> tuple[FhirClient, ScriptedSession]:
    session = ScriptedSession({"metadata": EVERYTHING_STATEMENT, **answers})
    return FhirClient("http://hapi.example/fhir", session=session), session


def test_everything_brings_the_patient_so_it_is_not_read_separately() -> None:
    client, session = _client(
        {"Patient/p1/$everything": _bundle(CONDITION, PATIENT), "Practitioner/dr1": DOCTOR}
    )

    record = gather_patient_record(client, "p1")

    # the Patient still comes first, and the shared resources it references are still read
    assert [(r["resourceType"], r["id"]) for r in record] == [
        ("Patient", "p1"),
        ("Condition", "c1"),
        ("Practitioner", "dr1"),
    ]
    assert [path for path, _ in session.sent] == ["metadata", "Patient/p1/$everything", "Practitioner/dr1"]


def test_a_server_whose_everything_leaves_the_patient_out_still_gets_it_read() -> None:
    client, session = _client(
        {"Patient/p1/$everything": _bundle(CONDITION), "Patient/p1": PATIENT, "Practitioner/dr1": DOCTOR}
    )

    record = gather_patient_record(client, "p1", use_everything=True)

    assert [(r["resourceType"], r["id"]) for r in record][:2] == [("Patient", "p1"), ("Condition", "c1")]
    assert "Patient/p1" in [path for path, _ in session.sent]

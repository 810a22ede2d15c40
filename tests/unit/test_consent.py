"""Consent: request validation (pure), the FHIR Consent mirror (pure), and the service's refusal rules on a
real SQLite database — a refused address saves nothing, the trust policy follows the creator."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from direct.errors import AddressError, NoCertificate
from fhir_bridge import audit
from fhir_bridge.config import load_settings
from fhir_bridge.consent.errors import InvalidRequest, NotFound
from fhir_bridge.consent.fhir_consent import to_fhir_consent
from fhir_bridge.consent.model import parse_request
from fhir_bridge.consent.service import ConsentService
from fhir_bridge.db import AuditRecord, Authorization, Database, Transmission
from fhir_bridge.pipeline.service import Pipeline

BASE = {
    "patient_id": "p-1",
    "address": "dr@direct.example.org",
    "kind": "always",
    "created_by": {"type": "clinician", "id": "u7"},
    "consent_method": "in_person",
}


def req(**over):
    return parse_request({**BASE, **over})


# --- validation (pure) ---------------------------------------------------------------------------------
def test_a_valid_request_and_its_trust_policy():
    r = req()
    assert (r.kind, r.trust_policy, r.payload_type, r.send_now) == (
        "always",
        "trusted",
        "entire_record",
        True,
    )
    patient = req(created_by={"type": "patient", "id": "p-1"}, consent_method="portal")
    assert patient.trust_policy == "public"


def test_patient_consent_defaults_to_the_portal():
    data = {**BASE, "created_by": {"type": "patient", "id": "p-1"}}
    del data["consent_method"]
    assert parse_request(data).consent_method == "portal"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"patient_id": None}, "patient_id"),
        ({"patient_id": "a/b"}, "patient_id"),
        ({"address": 42}, "address"),
        ({"address": "x" * 400}, "address"),
        ({"kind": "weekly"}, "kind"),
        ({"created_by": "u7"}, "created_by"),
        ({"created_by": {"type": "robot", "id": "r"}}, "type"),
        ({"consent_method": "portal"}, "consent_method"),  # a clinician does not consent through the portal
        ({"created_by": {"type": "patient", "id": "p"}, "consent_method": "in_person"}, "consent_method"),
        ({"consent_method": "clipboard"}, "attestation"),
        ({"attestation": "signed\x00"}, "attestation"),
        ({"payload": {"type": "documents", "documents": []}}, "payload.documents"),
        ({"payload": {"type": "documents", "documents": ["Patient/1"]}}, "payload.documents"),
        ({"payload": {"type": "entire_record", "documents": ["1"]}}, "payload.documents"),
        ({"send_now": "yes"}, "send_now"),
        ({"min_interval_seconds": -1}, "min_interval_seconds"),
        ({"min_interval_seconds": True}, "min_interval_seconds"),
    ],
)
def test_invalid_requests_name_the_field(over, field):
    with pytest.raises(InvalidRequest) as info:
        req(**over)
    assert info.value.field == field and info.value.code == "invalid_request"


def test_documents_are_normalised_to_document_references():
    r = req(
        payload={"type": "documents", "documents": ["42", {"id": "DocumentReference/7", "title": " Labs "}]}
    )
    assert r.documents == [{"id": "DocumentReference/42"}, {"id": "DocumentReference/7", "title": "Labs"}]


def test_clipboard_consent_with_attestation_is_accepted():
    r = req(consent_method="clipboard", attestation="Patient signed the form on 2026-01-02")
    assert r.attestation.startswith("Patient signed")


# --- FHIR Consent (pure) -------------------------------------------------------------------------------------
def test_fhir_consent_follows_revocation():
    auth = Authorization(
        id="a1",
        patient_id="p-1",
        address="dr@direct.example.org",
        kind="always",
        created_by_type="clinician",
        created_by_id="u7",
        consent_method="in_person",
        payload_type="documents",
        documents=[{"id": "DocumentReference/9"}],
        trust_policy="trusted",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    active = to_fhir_consent(auth)
    assert active["status"] == "active" and active["patient"] == {"reference": "Patient/p-1"}
    assert active["provision"]["actor"][0]["reference"]["identifier"]["value"] == "dr@direct.example.org"
    assert active["provision"]["data"] == [
        {"meaning": "instance", "reference": {"reference": "DocumentReference/9"}}
    ]
    assert active["performer"][0]["identifier"]["value"] == "u7"
    auth.revoked_at = datetime(2026, 2, 1, tzinfo=UTC)
    auth.fhir_consent_id = "c-5"
    inactive = to_fhir_consent(auth)
    assert (inactive["status"], inactive["id"]) == ("inactive", "c-5")
    assert inactive["provision"]["period"]["end"].startswith("2026-02-01")


# --- service on SQLite ------------------------------------------------------------------------------------------
class PolicyRecorder:
    """Answers like discovery would for two domains and records which policy was asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def check(self, address: str, policy: str) -> bool:
        self.calls.append((address, policy))
        if address.endswith("@nocert.example.org"):
            raise NoCertificate()
        return policy == "trusted"


class MemoryFhir:
    def __init__(self) -> None:
        self.written: list[dict] = []

    def write(self, resource):
        self.written.append(resource)
        return resource.get("id") or "c-1"


@pytest.fixture
def service(tmp_path):
    settings = load_settings(env={}, database_url=f"sqlite:///{tmp_path}/c.sqlite3")
    db = Database(settings.database_url)
    db.upgrade()
    checker, fhir = PolicyRecorder(), MemoryFhir()
    svc = ConsentService(db, Pipeline(db, settings, None, None), checker, fhir_writer=fhir)  # type: ignore[arg-type]
    svc.checker_calls, svc.fhir = checker.calls, fhir
    yield svc
    db.dispose()


def count(svc, model) -> int:
    with svc.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_the_policy_follows_the_creator(service):
    service.create(req(), audit.Actor("clinician", "u7"))
    service.create(
        req(created_by={"type": "patient", "id": "p-1"}, consent_method="portal"),
        audit.Actor("patient", "p-1"),
    )
    assert [policy for _, policy in service.checker_calls] == ["trusted", "public"]


def test_bad_syntax_is_refused_before_any_lookup_and_nothing_is_saved(service):
    with pytest.raises(AddressError):
        service.create(req(address="no at sign"), audit.Actor("clinician", "u7"))
    assert service.checker_calls == []
    assert count(service, Authorization) == 0 and count(service, Transmission) == 0


def test_discovery_failure_is_refused_with_its_code_and_audited(service):
    with pytest.raises(NoCertificate) as info:
        service.create(req(address="x@nocert.example.org"), audit.Actor("clinician", "u7"))
    assert info.value.code == "no_certificate"
    assert count(service, Authorization) == 0
    with service.db.session() as s:
        row = s.scalars(select(AuditRecord)).one()
    assert (row.action, row.outcome, row.detail["code"]) == (
        "authorization.refused",
        "failure",
        "no_certificate",
    )


def test_create_queues_the_first_send_and_mirrors_a_fhir_consent(service):
    auth = service.create(req(), audit.Actor("clinician", "u7"))
    assert auth.recipient_trusted is True and auth.fhir_consent_id == "c-1"
    assert [t.trigger for t in service.transmissions(auth.id)] == ["initial"]
    revoked = service.revoke(auth.id, audit.Actor("patient", "p-1"))
    assert revoked.revoked_by_type == "patient"
    assert [r["status"] for r in service.fhir.written] == ["active", "inactive"]
    assert (
        service.revoke(auth.id, audit.Actor("patient", "p-1")).revoked_at == revoked.revoked_at
    )  # idempotent
    with pytest.raises(NotFound):
        service.revoke("nope", audit.Actor("patient", "p-1"))


def test_a_fhir_outage_does_not_undo_the_consent(service):
    class Down:
        def write(self, resource):
            raise ConnectionError("down")

    service.fhir_writer = Down()
    auth = service.create(req(), audit.Actor("clinician", "u7"))
    assert service.get(auth.id).fhir_consent_id is None and count(service, Authorization) == 1

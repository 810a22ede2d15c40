"""Gather one patient's record from the FHIR server: the resources the C-CDA mapper needs.

Two strategies, picked from the CapabilityStatement:

* ``Patient/{id}/$everything`` (HAPI and most full servers): one paged operation returns the compartment.
* Per-resource searches (OpenEMR 7.0.3 and 8.1, which have no ``$everything``, and other US Core servers): one
  ``?patient=`` search per US Core resource type the server supports and our token may read. Only parameters
  the CapabilityStatement lists are sent (``patient``; no ``_count``, which OpenEMR 7.0.3 answers with an
  empty Bundle), and each search must come back whole (``FhirClient.search_all``).

Either way, the literal references the record makes to shared resources (Practitioner, Organization,
Medication, Location, PractitionerRole) are then read one by one, because neither strategy guarantees them
and the C-CDA needs authors, performers and custodians. Everything received passes the shape checks.

A record is complete or it is not built: a refused or failed search, a type the server has but the token was
not granted, or a referenced resource that cannot be read (other than gone) raises a ``FhirError`` whose code
and message become the job's failure reason. Sending a C-CDA with an empty Problems section because a search
failed would tell the recipient something false about the patient.
"""

from __future__ import annotations

import logging
from typing import Any

from fhir_bridge.fhir import shapes
from fhir_bridge.fhir.client import FhirClient, search_set_problem
from fhir_bridge.fhir.errors import FhirAuthError, FhirNotFound, FhirSearchRefused
from fhir_bridge.fhir.scopes import BACKEND_RESOURCES

log = logging.getLogger(__name__)

#: US Core 3.1.1 / 6.1.0 patient-compartment types with the search parameter that selects one patient.
US_CORE_PATIENT_SEARCHES: tuple[tuple[str, str], ...] = (
    ("AllergyIntolerance", "patient"),
    ("CarePlan", "patient"),
    ("CareTeam", "patient"),
    ("Condition", "patient"),
    ("Coverage", "patient"),
    ("Device", "patient"),
    ("DiagnosticReport", "patient"),
    ("DocumentReference", "patient"),
    ("Encounter", "patient"),
    ("Goal", "patient"),
    ("Immunization", "patient"),
    ("MedicationDispense", "patient"),
    ("MedicationRequest", "patient"),
    ("MedicationStatement", "patient"),
    ("Observation", "patient"),
    ("Procedure", "patient"),
    ("QuestionnaireResponse", "patient"),
    ("RelatedPerson", "patient"),
    ("ServiceRequest", "patient"),
    ("Specimen", "patient"),
)

#: Shared (non-compartment) resources the record may point at and the C-CDA can use.
REFERENCED_TYPES: frozenset[str] = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "Medication", "Location"}
)

#: Upper bound on referenced reads per record, so a pathological record cannot make us crawl a server.
MAX_REFERENCED_READS = 500


def gather_patient_record(
    client: FhirClient, patient_id: str, *, use_everything: bool | None = None
) -> list[dict]:
    """All resources of the patient's record, the Patient first, each (type, id) once.

    ``use_everything`` forces a strategy (tests, or a server whose CapabilityStatement lies); by default
    ``$everything`` is used when the server advertises it.
    """
    caps = client.capabilities()
    record = _Record()
    everything = caps.has_patient_everything if use_everything is None else use_everything
    if everything:
        # The operation returns the Patient itself (its compartment's focal resource): one round trip
        # less per record than reading it first. Read only when a server leaves it out.
        found: list[dict] = []
        for bundle in client.search_pages(f"Patient/{patient_id}/$everything", {"_count": 200}):
            problem = search_set_problem(bundle)
            if problem:
                raise FhirSearchRefused(f"the FHIR server answered $everything with an error ({problem})")
            for resource in shapes.bundle_resources(bundle):
                if resource.get("resourceType") != "OperationOutcome":
                    found.append(shapes.check_resource(resource))
        patient = next((r for r in found if r["resourceType"] == "Patient" and r["id"] == patient_id), None)
        record.add(patient if patient is not None else client.read("Patient", patient_id))
        for resource in found:
            record.add(resource)
    else:
        record.add(client.read("Patient", patient_id))
        for rtype, param in US_CORE_PATIENT_SEARCHES:
            if not caps.can_search(rtype, param) or not _may_read(client, rtype):
                continue
            for resource in client.search_all(rtype, {param: f"Patient/{patient_id}"}):
                # Servers add _include'd resources to search sets: keep real matches and shared resources.
                if resource.get("resourceType") in {rtype, *REFERENCED_TYPES}:
                    record.add(resource)
    _add_referenced(client, record)
    return record.resources


def _may_read(client: FhirClient, resource_type: str) -> bool:
    """Whether to search or read ``resource_type`` with this client's credentials.

    Credentials without scopes (none, a static bearer token) may read everything the server has. With SMART
    Backend Services (``SmartBackendAuth.readable``): a granted type is read; a type asked for that the token
    does not grant stops the record (``FhirAuthError``: the server has it, so the record would silently lack
    it — OpenEMR trims a request to the client's registered scopes without an error); a type we never asked
    for is left out (with derived scopes: types outside ``scopes.BACKEND_RESOURCES``; with ``fhir.scopes`` set
    by the operator, whatever it leaves out — logged, as it shortens every record).
    """
    readable = getattr(client.auth, "readable", None)
    allowed = True if readable is None else readable(resource_type)
    if allowed is True:
        return True
    if allowed is False:
        raise FhirAuthError(
            f"the access token does not grant reading {resource_type}; the record would be incomplete "
            f"(the client must be registered with system/{resource_type}.read)",
            detail="scope_not_granted",
        )
    if resource_type in BACKEND_RESOURCES:
        log.warning("%s is not in the configured scopes (fhir.scopes): records leave it out", resource_type)
    else:
        log.debug("%s is not among the types this client reads; not searched", resource_type)
    return False


class _Record:
    """Resources in arrival order, deduplicated by (type, id)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, resource: dict[str, Any]) -> None:
        key = (resource["resourceType"], resource["id"])
        self._by_key.setdefault(key, resource)

    def has(self, key: tuple[str, str]) -> bool:
        return key in self._by_key

    @property
    def resources(self) -> list[dict[str, Any]]:
        return list(self._by_key.values())


def _add_referenced(client: FhirClient, record: _Record) -> None:
    """Read the shared resources the record references, transitively (a PractitionerRole names its
    Practitioner and Organization), skipping ones the server no longer has (404/410) and types our token was
    never meant to read. Any other failure propagates: an author or custodian that cannot be read is a
    failed record, not a blank header."""
    pending = list(record.resources)
    reads = 0
    while pending:
        resource = pending.pop(0)
        for ref in shapes.iter_references(resource):
            key = shapes.parse_reference(ref, client.base_url) if isinstance(ref, str) else None
            if not key or key[0] not in REFERENCED_TYPES or record.has(key):
                continue
            if not _may_read(client, key[0]):
                continue
            if reads >= MAX_REFERENCED_READS:
                log.warning("record references more than %d shared resources; rest skipped", reads)
                return
            reads += 1
            try:
                found = client.read(*key)
            except FhirNotFound:
                log.info("referenced %s is gone; skipped", key[0])
                continue
            record.add(found)
            pending.append(found)

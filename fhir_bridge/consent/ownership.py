"""Whose document is it? Fail-closed ownership of a chosen DocumentReference.

Why fail-closed: a "chosen documents" authorization sends whatever DocumentReferences it names. A document
belongs to the authorization's patient only when ``DocumentReference.subject.reference`` is a literal
reference to exactly that patient on this FHIR server: ``Patient/<id>`` (optionally ``/_history/<v>``) or the
same written absolute on the server's base URL — the forms ``fhir_bridge.fhir.shapes.parse_reference``
resolves. Everything else is refused: no subject, a subject given only by ``identifier`` or ``display``, a
contained (``#x``), foreign-server, ``urn:uuid:`` (meaningful only inside the Bundle that carried it) or
conditional reference, another patient, or a non-Patient subject.

The check runs twice: when the authorization is created (:class:`DocumentOwnership`, through the consent
service, for the API and the pages alike) and again each time the package is built
(``fhir_bridge.wiring.RecordBuilder``), since a document can be re-filed after the authorization was saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from fhir_bridge.consent.errors import InvalidRequest
from fhir_bridge.fhir.auth import auth_from_settings
from fhir_bridge.fhir.client import FhirClient
from fhir_bridge.fhir.errors import FhirNotFound
from fhir_bridge.fhir.shapes import parse_reference
from fhir_bridge.lazy import Lazy

if TYPE_CHECKING:
    from fhir_bridge.config import Settings
    from fhir_bridge.fhir.client import FhirClient

#: Reason code of a document that is not (or no longer) the authorization's patient's: creation refusal
#: (422, field ``payload.documents``) and build-time job failure alike.
NOT_PATIENTS = "document_not_patients"
#: Reason code of a chosen document the FHIR server could not be asked about at creation (outage, refusal).
UNREADABLE = "document_unreadable"
#: FHIR reads made on the request thread fail fast: one retry, not the worker's backoff.
CREATION_RETRIES = 1


def subject_patient(resource: dict[str, Any], base_url: str | None) -> str | None:
    """The id of the local Patient that ``resource.subject.reference`` names, else None."""
    subject = resource.get("subject")
    if not isinstance(subject, dict):
        return None
    ref = subject.get("reference")
    if not isinstance(ref, str):
        return None
    parsed = parse_reference(ref, base_url)
    if parsed is None or parsed[0] != "Patient":
        return None
    declared = subject.get("type")
    if declared is not None and declared != "Patient":
        return None  # a reference whose declared type contradicts it is not trusted either way
    return parsed[1]


def belongs_to(resource: dict[str, Any], patient_id: str, base_url: str | None) -> bool:
    """True only for a DocumentReference whose subject is a literal reference to exactly ``patient_id``."""
    return (
        resource.get("resourceType") == "DocumentReference"
        and subject_patient(resource, base_url) == patient_id
    )


def not_patients_message(doc_id: str, patient_id: str) -> str:
    return (
        f"{doc_id} is not a document of this patient: its subject must be a reference to "
        f"Patient/{patient_id} on this health record server."
    )


class DocumentOwnership:
    """Reads each chosen DocumentReference from the FHIR server and refuses any that is not the patient's.

    ``client_factory`` builds the sidecar's FHIR client on first use (the API starts while FHIR is down).
    A refusal raises :class:`InvalidRequest` with field ``payload.documents`` and code
    ``document_not_patients`` (not found, or not this patient's: the same answer, so a patient token cannot
    probe other records) or ``document_unreadable`` (the server could not be asked).
    """

    def __init__(self, client_factory: Callable[[], FhirClient]):
        self._client = Lazy(client_factory)

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentOwnership:
        def client() -> FhirClient:

            return FhirClient(
                settings.fhir_base_url,
                auth_from_settings(settings),
                timeout=settings.fhir_timeout,
                max_retries=CREATION_RETRIES,
            )

        return cls(client)

    @property
    def client(self) -> FhirClient:
        return self._client()

    def check(self, patient_id: str, documents: Iterable[dict[str, str]]) -> None:

        for doc in documents:
            doc_id = str(doc.get("id", ""))
            rtype, _, rid = doc_id.partition("/")
            if rtype != "DocumentReference" or not rid:
                raise InvalidRequest(
                    not_patients_message(doc_id, patient_id), field="payload.documents", code=NOT_PATIENTS
                )
            try:
                client = self.client
                resource = client.read(rtype, rid)
            except FhirNotFound:
                resource = {}
            except Exception as exc:  # outage, refused credentials, bad settings: not known to be theirs
                raise InvalidRequest(
                    f"{doc_id} could not be read from the health record server "
                    f"({getattr(exc, 'code', 'fhir_error')}), so its owner cannot be checked; "
                    "nothing was saved. Try again later.",
                    field="payload.documents",
                    code=UNREADABLE,
                ) from None
            if not belongs_to(resource, patient_id, client.base_url):
                raise InvalidRequest(
                    not_patients_message(doc_id, patient_id), field="payload.documents", code=NOT_PATIENTS
                )

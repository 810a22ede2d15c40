"""FHIR reads made with the signed-in user's own token: what the pages show is what that user may see.

Why the user's token and not the sidecar's backend credentials: the SMART server enforces the user's
permissions (a patient token reads only its own compartment), so the preview can never show more than the
person is allowed to see. Pure helpers (names, Direct address pick-up) take resources and return values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from fhir_bridge.consent.ownership import belongs_to
from fhir_bridge.errors import BridgeError
from fhir_bridge.web.config import CCD_RESOURCES


class FhirReadError(BridgeError):
    """A FHIR read failed; ``status`` is the HTTP status (401 = token no longer valid)."""

    code = "fhir_read_failed"

    def __init__(self, status: int):
        super().__init__(f"FHIR read failed with HTTP {status}", detail=str(status))
        self.status = status
        #: A server error or a "slow down" may pass later; a refusal (401, 403, 404...) will not.
        self.transient = status >= 500 or status == 429


@dataclass(frozen=True)
class PatientSummary:
    id: str
    name: str
    birth_date: str
    direct_address: str | None


class UserFhir:
    def __init__(self, base: str, token: str, timeout: float = 20.0):
        self.base = base.rstrip("/")
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"})
        self.timeout = timeout

    def _get(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.http.get(url, params=params, timeout=self.timeout)
        if answer.status_code != 200:
            raise FhirReadError(answer.status_code)
        return answer.json()

    def read(self, rtype: str, rid: str) -> dict[str, Any]:
        return self._get(f"{self.base}/{rtype}/{rid}")

    def search(self, rtype: str, params: dict[str, Any], limit: int = 1000) -> list[dict[str, Any]]:
        """All pages of a search (bounded by ``limit`` resources).

        No ``_count``: the server's own page size is fine for a preview, and OpenEMR 7.0.3 answers a
        ``_count`` it does not declare with an empty Bundle. A ``next`` link is followed only on the FHIR
        server's own origin: the request carries the user's bearer token, which must never go anywhere else
        (a 502, as for any answer from the server we cannot use).
        """
        out: list[dict[str, Any]] = []
        bundle = self._get(f"{self.base}/{rtype}", params)
        while True:
            out += [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
            nxt = next(
                (link["url"] for link in bundle.get("link", []) if link.get("relation") == "next"), None
            )
            if not nxt or len(out) >= limit:
                return out[:limit]
            if not same_origin(nxt, self.base):
                raise FhirReadError(502)
            bundle = self._get(nxt)

    def patient(self, patient_id: str) -> PatientSummary:
        return summarize(self.read("Patient", patient_id))

    def documents(self, patient_id: str) -> list[dict[str, str]]:
        """The patient's documents a person can choose from: ``{"id", "title", "date"}``.

        Only documents whose subject is a literal reference to this patient are offered (whatever else the
        search returns — no subject, an identifier or display only — is not known to be theirs); the consent
        service checks the choice again against the server before anything is saved.
        """

        try:
            found = self.search("DocumentReference", {"patient": patient_id})
        except FhirReadError as exc:
            if exc.status in (401, 403):
                raise
            return []
        return [document_choice(d) for d in found if d.get("id") and belongs_to(d, patient_id, self.base)]

    def record(self, patient_id: str) -> list[dict[str, Any]]:
        """The patient's resources for the preview (Patient + a search per US Core resource type)."""
        resources = [self.read("Patient", patient_id)]
        for rtype in CCD_RESOURCES:
            if rtype in {"Patient", "Practitioner", "Organization", "Location", "Medication"}:
                continue
            try:
                resources += self.search(rtype, {"patient": patient_id})
            except FhirReadError as exc:
                if exc.status == 401:
                    raise
        return resources


def same_origin(url: str, base: str) -> bool:
    """Scheme, host and port of ``url`` are those of ``base`` (default ports made explicit)."""

    def origin(u: str) -> tuple[str, str, int | None]:
        parts = urlsplit(u)
        default = {"http": 80, "https": 443}.get(parts.scheme)
        return parts.scheme, (parts.hostname or "").lower(), parts.port or default

    return origin(url) == origin(base)


def summarize(patient: dict[str, Any]) -> PatientSummary:
    return PatientSummary(
        id=str(patient.get("id", "")),
        name=display_name(patient),
        birth_date=str(patient.get("birthDate", "")),
        direct_address=direct_address_of(patient),
    )


def display_name(patient: dict[str, Any]) -> str:
    names = patient.get("name") or []
    chosen = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    if chosen.get("text"):
        return str(chosen["text"])
    parts = [*chosen.get("given", []), chosen.get("family", "")]
    return " ".join(p for p in parts if p) or "Unnamed patient"


def direct_address_of(patient: dict[str, Any]) -> str | None:
    """The patient's Direct / trusted e-mail from ``Patient.telecom``, for pre-filling the clinician form.

    OpenEMR shows ``patient_data.email_direct`` ("Trusted Email") as ``system=email, use=mobile`` (PR #7114),
    other servers mark a Direct address only by its domain (``direct.`` by convention). Those two are taken;
    an ordinary e-mail address is not (it is not a Direct address and would fail discovery).
    """
    emails = [t for t in patient.get("telecom") or [] if t.get("system") == "email" and t.get("value")]
    for telecom in emails:
        value = str(telecom["value"]).removeprefix("mailto:")
        domain = value.rpartition("@")[2].lower()
        if domain.startswith("direct.") or ".direct." in domain or telecom.get("use") == "mobile":
            return value
    return None


def document_choice(doc: dict[str, Any]) -> dict[str, str]:
    title = doc.get("description") or (doc.get("type") or {}).get("text")
    if not title:
        codings = (doc.get("type") or {}).get("coding") or [{}]
        title = codings[0].get("display") or "Document"
    date = str(doc.get("date", ""))[:10]
    return {"id": f"DocumentReference/{doc['id']}", "title": str(title), "date": date}

"""Validation of what people type: pure functions returning the cleaned values and per-field errors.

Why separate from the views: the rules (an address, a choice of once/always, at least one document when
"some documents" is chosen, an attestation for clinician consent) are checked before anything is saved, and
each error belongs to one field so the page can show it next to that field while keeping what was typed.
The allowed values and limits are the API's (``fhir_bridge.api.models``); only the wording is the page's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from direct.address import DirectAddress
from direct.errors import AddressError
from fhir_bridge.api.models import CLINICIAN_METHODS, KINDS, MAX_ADDRESS, PAYLOAD_TYPES


@dataclass
class Form:
    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _address(form: Form, raw: str) -> None:
    raw = raw.strip()[:MAX_ADDRESS]
    form.values["address"] = raw
    if not raw:
        form.errors["address"] = "Enter the Direct address to send to."
        return
    try:
        form.values["address"] = str(DirectAddress.parse(raw))
    except AddressError:
        form.errors["address"] = "This is not a valid Direct address. It looks like name@direct.example.org."


def patient_share(data: dict[str, Any], documents: list[dict[str, str]]) -> Form:
    """The patient's share form: address, once/always, entire record or chosen documents."""
    form = Form(
        {
            "kind": data.get("kind", ""),
            "payload": data.get("payload", "entire_record"),
            "documents": [d for d in data.get("documents", []) if isinstance(d, str)],
        }
    )
    _address(form, str(data.get("address", "")))
    if form.values["kind"] not in KINDS:
        form.errors["kind"] = "Choose how often to send your record."
    if form.values["payload"] not in PAYLOAD_TYPES:
        form.values["payload"] = "entire_record"
    if form.values["payload"] == "documents":
        known = {d["id"] for d in documents}
        chosen = [d for d in form.values["documents"] if d in known]
        form.values["documents"] = chosen
        if not chosen:
            form.errors["documents"] = "Choose at least one document, or choose Entire record."
    else:
        form.values["documents"] = []
    return form


def clinician_add(data: dict[str, Any]) -> Form:
    """The clinician's Add Direct Address form: address, Always send, consent method, attestation."""
    form = Form(
        {
            "always": data.get("always") == "yes",
            "method": data.get("method", ""),
            "attest": data.get("attest") == "yes",
        }
    )
    _address(form, str(data.get("address", "")))
    if form.values["method"] not in CLINICIAN_METHODS:
        form.errors["method"] = "Choose how the patient gave consent."
    if not form.values["attest"]:
        form.errors["attest"] = "Confirm that the patient gave this consent."
    return form


def attestation_text(method: str) -> str:
    how = "in person" if method == "in_person" else "on a signed consent form kept on file"
    return f"I confirm the patient asked, {how}, for their record to be sent to this Direct address."

"""The FHIR resources the sidecar writes are checked against the FHIR models of ``fhir.resources`` first.

Why: the sidecar writes two kinds of resource to the EHR (``Consent`` for an authorization, ``AuditEvent``
for the audit trail). They are built by our code, so one the models refuse is a bug in a builder: it fails
with a stable code (:class:`FhirResourceInvalid`, permanent) instead of reaching the chart malformed or being
refused by the server in a way that reads like an outage.

Why the ``R4B`` models: the servers here speak R4 (4.0.1: HAPI, OpenEMR). ``fhir.resources`` 8 ships R5 (its
top-level package), R4B (4.3) and STU3; there is no plain R4 package any more. R4B is R4 plus changes outside
these two resources (medication definition, subscriptions topics, ...): ``Consent`` and ``AuditEvent`` are the
same in both, while R5 reshaped them (``Consent.patient`` became ``subject``, ``Consent.scope`` is gone,
``AuditEvent.type`` is a CodeableConcept) and would refuse correct R4 resources.

Messages carry element paths and error kinds only, never values (which may be PHI).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from fhir_bridge.fhir.errors import FhirError


@cache
def written_models() -> dict[str, type[BaseModel]]:
    """Resource types the sidecar writes -> the R4B model that checks them.

    Loaded on first use, not at import: the two models cost ~28 MiB and ~0.2 s, which every start-up (and
    every restart after a crash, measured by bench/fault_run.py) would pay before it could answer /readyz.
    """
    from fhir.resources.R4B.auditevent import AuditEvent
    from fhir.resources.R4B.consent import Consent

    return {"Consent": Consent, "AuditEvent": AuditEvent}


class FhirResourceInvalid(FhirError):
    """A FHIR resource the sidecar built is not valid FHIR R4 (a bug in its builder); it was not written."""

    code = "fhir_resource_invalid"
    transient = False


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` unchanged when it is a valid R4 resource of a type we write; else FhirResourceInvalid."""
    resource_type = resource.get("resourceType")
    model = written_models().get(resource_type) if isinstance(resource_type, str) else None
    if model is None:
        raise FhirResourceInvalid(f"the sidecar does not write {resource_type!r} resources")
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        problems = sorted(
            {f"{'.'.join(str(p) for p in err['loc']) or '(resource)'}: {err['type']}" for err in exc.errors()}
        )
        # ``from None``: pydantic's message quotes the input values, which may be PHI.
        raise FhirResourceInvalid(
            f"built {resource_type} is not valid FHIR R4 ({len(problems)} problem(s))",
            detail="; ".join(problems),
        ) from None
    return resource


def fhir_datetime(moment: datetime) -> str:
    """``moment`` as a FHIR ``dateTime``/``instant``: a time of day needs a zone (FHIR R4 §2.24.0.1), and the
    database gives our UTC timestamps back without one (SQLite), so a naive value is UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()

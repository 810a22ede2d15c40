"""Append-only audit trail: every consent change and every send attempt (who, what, when, outcome).

Why a table of its own: operators and patients must be able to answer "who shared my record with whom, and
did it arrive?" long after the logs rotated. Rows are only ever inserted (the migration installs triggers
that refuse UPDATE and DELETE). ``detail`` holds codes and identifiers, never clinical content. Where the
FHIR server allows writes, the same facts are mirrored as FHIR ``AuditEvent`` resources (best effort), each
checked against the FHIR R4 model before it is written (:mod:`fhir_bridge.fhir.validation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fhir_bridge.db.models import AuditRecord, SourceState, utcnow
from fhir_bridge.fhir.validation import fhir_datetime, validated

ACTOR_TYPES = frozenset({"patient", "clinician", "api_key", "system"})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something: a patient, a clinician user, an API client, or the sidecar itself."""

    type: str
    id: str

    def __post_init__(self) -> None:
        if self.type not in ACTOR_TYPES:
            raise ValueError(f"unknown actor type {self.type!r}")


SYSTEM = Actor("system", "bbdirect")


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str,
    outcome: str,
    patient_id: str | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditRecord:
    """Append one audit row in the caller's transaction (so the fact and its audit commit together)."""
    row = AuditRecord(
        at=at or utcnow(),
        actor_type=actor.type,
        actor_id=actor.id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        patient_id=patient_id,
        outcome=outcome,
        detail=detail,
    )
    session.add(row)
    return row


def history(
    session: Session, *, entity_id: str | None = None, patient_id: str | None = None
) -> list[AuditRecord]:
    query = select(AuditRecord).order_by(AuditRecord.id)
    if entity_id is not None:
        query = query.where(AuditRecord.entity_id == entity_id)
    if patient_id is not None:
        query = query.where(AuditRecord.patient_id == patient_id)
    return list(session.scalars(query))


# --- FHIR AuditEvent (pure) ------------------------------------------------------------------
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_ACTIONS = {"authorization.create": "C", "authorization.revoke": "U", "send.attempt": "E"}


def to_fhir_audit_event(row: AuditRecord) -> dict[str, Any]:
    """The audit row as a valid R4 ``AuditEvent`` (export = DCM 110106 for sends, else a consent change).

    ``FhirResourceInvalid`` when the builder made an invalid one: the mirror stops at that row, loudly,
    rather than skipping it or writing it."""
    is_send = row.action.startswith("send")
    outcome = "0" if row.outcome in {"success", "skipped"} else ("4" if row.outcome == "retry" else "8")
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {
            "system": _DCM,
            "code": "110106" if is_send else "110110",
            "display": "Export" if is_send else "Patient Record",
        },
        "action": _ACTIONS.get(row.action, "E"),
        "recorded": fhir_datetime(row.at),
        "outcome": outcome,
        "outcomeDesc": row.action + ": " + row.outcome,
        "agent": [
            {
                "requestor": row.actor_type != "system",
                "who": {
                    "identifier": {"system": "urn:bbdirect:actor:" + row.actor_type, "value": row.actor_id}
                },
            }
        ],
        "source": {"observer": {"display": "Blue Button Direct sidecar"}},
        "entity": [
            {"what": {"identifier": {"system": "urn:bbdirect:" + row.entity_type, "value": row.entity_id}}}
        ],
    }
    if row.patient_id:
        event["entity"].append({"what": {"reference": "Patient/" + row.patient_id}, "role": {"code": "1"}})
    return validated(event)


def mirror_to_fhir(db: Any, writer: Any, batch: int = 100) -> int:
    """Write audit rows not yet mirrored as FHIR ``AuditEvent`` (progress kept in ``source_state``).

    Runs in the background (``fhir.write_audit``); a row is mirrored at least once. Returns how many.
    """

    with db.session() as s:
        state = s.get(SourceState, ("audit-mirror", "last_id"))
        last = int(state.value) if state else 0
        rows = list(
            s.scalars(select(AuditRecord).where(AuditRecord.id > last).order_by(AuditRecord.id).limit(batch))
        )
    done = 0
    for row in rows:
        writer.write(to_fhir_audit_event(row))
        done += 1
        with db.session() as s:
            state = s.get(SourceState, ("audit-mirror", "last_id"))
            if state is None:
                s.add(
                    SourceState(source="audit-mirror", key="last_id", value=str(row.id), updated_at=utcnow())
                )
            else:
                state.value = str(row.id)
    return done

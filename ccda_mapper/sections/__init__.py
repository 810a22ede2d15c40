"""One module per C-CDA R2.1 section; :data:`ORDER` is the order of sections in the CCD body."""

from __future__ import annotations

from . import (
    allergies,
    assessment,
    encounters,
    functional_status,
    goals,
    health_concerns,
    immunizations,
    medical_equipment,
    medications,
    mental_status,
    notes,
    payers,
    plan_of_treatment,
    problems,
    procedures,
    reason_for_referral,
    results,
    social_history,
    vital_signs,
)

ORDER = (
    allergies,
    medications,
    problems,
    procedures,
    results,
    vital_signs,
    social_history,
    immunizations,
    encounters,
    plan_of_treatment,
    goals,
    health_concerns,
    functional_status,
    mental_status,
    medical_equipment,
    payers,
    assessment,
    reason_for_referral,
    notes,
)

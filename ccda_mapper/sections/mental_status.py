"""Mental Status Section, 2.16.840.1.113883.10.20.22.2.56:2015-08-01 (only when data exists).

Observations with US Core category cognitive-status → Mental Status Observation (4.74:2015-08-01), whose code
is fixed to SNOMED 373930000 "Cognitive function" + LOINC 75275-8 (CONF:1198-32788..32791); the finding is the
value, and the FHIR question stays in the narrative.
"""

from __future__ import annotations

from .. import datatypes as dt
from ..context import Ctx
from . import status_observations
from .base import Spec

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.56", "2015-08-01"),),
    code="10190-7",
    display="Mental status Narrative",
    title="Mental Status",
    prefix="mental",
)


def build(ctx: Ctx, body: dt.Node) -> None:
    status_observations.build(
        ctx,
        body,
        SPEC,
        "mental",
        ("2.16.840.1.113883.10.20.22.4.74", "2015-08-01"),
        ("373930000", "Cognitive function", "75275-8", "Cognitive function"),
    )

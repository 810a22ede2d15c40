"""Functional Status Section, 2.16.840.1.113883.10.20.22.2.14:2014-06-09 (only when data exists).

Observations with US Core category functional-status / disability-status → Functional Status Observation
(4.67).
"""

from __future__ import annotations

from .. import datatypes as dt
from ..context import Ctx
from . import status_observations
from .base import Spec

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.14", "2014-06-09"),),
    code="47420-5",
    display="Functional status assessment note",
    title="Functional Status",
    prefix="functional",
)


def build(ctx: Ctx, body: dt.Node) -> None:
    status_observations.build(
        ctx, body, SPEC, "functional", ("2.16.840.1.113883.10.20.22.4.67", "2014-06-09")
    )

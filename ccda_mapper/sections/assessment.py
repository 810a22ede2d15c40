"""Assessment Section, 2.16.840.1.113883.10.20.22.2.8 (narrative only), when ClinicalImpression exists."""

from __future__ import annotations

from .. import datatypes as dt
from ..context import Ctx
from ..index import Resource
from .base import Spec, finish, start

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.8", None),),
    code="51848-0",
    display="Evaluation note",
    title="Assessment",
    prefix="assessment",
)


def build(ctx: Ctx, body: dt.Node) -> None:
    items = [r for r in ctx.index.of("ClinicalImpression") if r.get("status") != "entered-in-error"]
    if not items:
        return
    sec, table = start(body, SPEC, ("Assessment", "Findings", "Date"))
    ctx.each(
        "ClinicalImpression",
        lambda r: _one(table, r) if r.get("status") != "entered-in-error" else None,
        undo=(sec, table.pending),
    )
    finish(body, sec, table, SPEC)


def _one(table: dt.Table, r: Resource) -> bool:
    findings = "; ".join(
        dt.cc_text(f.get("itemCodeableConcept")) for f in dt.lst(r.get("finding")) if isinstance(f, dict)
    )
    when, _ = dt.period_of(r, "effective")
    table.row(
        (
            dt.clean(r.get("summary"))
            or dt.clean(r.get("description"))
            or dt.cc_text(r.get("code"))
            or "Assessment",
            findings,
            dt.display_date(when or r.get("date")),
        )
    )
    return True

"""Goals Section (2.16.840.1.113883.10.20.22.2.60): Goal → Goal Observation (…22.4.121)."""

from __future__ import annotations

from .. import codes
from .. import datatypes as dt
from ..context import Ctx
from ..index import Resource
from .base import Spec, entry, finish, is_error, start

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.60", None),),
    code="61146-7",
    display="Goals",
    title="Goals",
    prefix="goal",
)


def build(ctx: Ctx, body: dt.Node) -> None:
    if not any(not is_error(r) for r in ctx.index.of("Goal")):
        return
    sec, table = start(body, SPEC, ("Goal", "Target", "Status", "Start", "Due"))
    ctx.each("Goal", lambda r: None if is_error(r) else _one(ctx, sec, table, r), undo=(sec, table.pending))
    finish(body, sec, table, SPEC)


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, res: Resource) -> bool:
    status = dt.str_or(res.get("lifecycleStatus"), "active")
    targets = [t for t in dt.lst(res.get("target")) if isinstance(t, dict)]
    due = next((t.get("dueDate") for t in targets if isinstance(t.get("dueDate"), str)), None)
    start_ = res.get("startDate")
    target_text = "; ".join(
        " ".join(
            x
            for x in (
                dt.cc_text(t.get("measure")),
                dt.quantity_text(t.get("detailQuantity")),
                dt.cc_text(t.get("detailCodeableConcept")),
                dt.clean(t.get("detailString")),
            )
            if x
        )
        for t in targets
    )
    rid = table.row(
        (
            dt.cc_text(res.get("description")) or "Goal",
            target_text,
            status,
            dt.display_date(start_),
            dt.display_date(due),
        )
    )
    ob = dt.el(entry(sec), "observation", {"classCode": "OBS", "moodCode": "GOL"})
    dt.template(ob, "2.16.840.1.113883.10.20.22.4.121")
    dt.identifiers(ob, res, ctx.index.key(res))
    dt.cd(ob, "code", res.get("description"), prefer=(codes.LOINC, codes.SNOMED), ref=rid)
    dt.text_ref(ob, rid)
    dt.leaf(ob, "statusCode", {"code": "active"})
    if dt.ts(start_) or dt.ts(due):
        dt.ivl_ts(ob, "effectiveTime", start_, due)
    for t in targets:
        if dt.pq(ob, "value", t.get("detailQuantity")) is not None:
            break
    ctx.author(ob, res.get("statusDate") or start_, res)
    return True

"""Immunizations Section (entries required), 2.16.840.1.113883.10.20.22.2.2.1:2015-08-01.

Immunization → Immunization Activity (4.52:2015-08-01) with Immunization Medication Information (4.54); a
``not-done`` immunization is the same act with ``negationInd="true"`` (CONF:1198-8985).
"""

from __future__ import annotations

from .. import codes
from .. import datatypes as dt
from .. import xmltext as xt
from ..context import Ctx
from ..index import Resource
from .base import Spec, empty, finish, is_error, start
from .medications import product

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.2.1", "2015-08-01"),),
    code="11369-6",
    display="History of Immunization Narrative",
    title="Immunizations",
    prefix="immunization",
    required=True,
)


def build(ctx: Ctx, body: dt.Node) -> None:
    items = [r for r in ctx.index.of("Immunization") if not is_error(r)]
    if not items:
        empty(body, SPEC)
        return
    sec, table = start(body, SPEC, ("Vaccine", "CVX", "Date", "Status", "Lot"))
    ctx.each(
        "Immunization", lambda r: None if is_error(r) else _one(ctx, sec, table, r), undo=(sec, table.pending)
    )
    finish(body, sec, table, SPEC)


#: the fixed opening of the entries (Immunization Activity 2.16.840.1.113883.10.20.22.4.52:2015-08-01)
_ENTRY_DONE, _ENTRY_NOT_DONE = (
    xt.Wrap(
        ("entry", {"typeCode": "DRIV"}),
        ("substanceAdministration", {"classCode": "SBADM", "moodCode": "EVN", "negationInd": neg}),
        first=dt.template_xml("2.16.840.1.113883.10.20.22.4.52", "2015-08-01"),
    )
    for neg in ("false", "true")
)


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, res: Resource) -> bool:
    when, _ = dt.period_of(res, "occurrence")
    when = when or res.get("date")  # STU3 field name, seen in older exports
    status = dt.str_or(res.get("status"), "completed")
    vc = res.get("vaccineCode")
    lot = dt.clean(res.get("lotNumber"))
    rid = table.row(
        (
            dt.cc_text(vc) or "Unknown vaccine",
            dt.first_code(vc, codes.CVX) or "",
            dt.display_date(when),
            status,
            lot,
        )
    )
    # written into sec as one string once complete
    wrap = _ENTRY_NOT_DONE if status == "not-done" else _ENTRY_DONE
    sa = wrap.open()
    dt.identifiers(sa, res, ctx.index.key(res))
    dt.text_ref(sa, rid)
    dt.leaf(sa, "statusCode", {"code": "completed"})
    dt.ts_el(sa, "effectiveTime", when)
    route = res.get("route")
    if isinstance(route, dict) and dt.first_code(route, "2.16.840.1.113883.3.26.1.1"):
        dt.cd(sa, "routeCode", route, prefer=("2.16.840.1.113883.3.26.1.1",), text=False)
    dose = res.get("doseQuantity")
    if isinstance(dose, dict) and dt.num(dose.get("value")) is not None:
        dt.leaf(
            sa,
            "doseQuantity",
            {"value": dt.num(dose.get("value")) or "", "unit": dt.clean(dt.ucum_unit(dose))},
        )
    product(sa, vc, rid, immunization=True, lot=lot)
    ctx.author(sa, res.get("recorded") or when, res)
    wrap.close_into(sec, sa)
    return True

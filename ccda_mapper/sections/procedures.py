"""Procedures Section, 2.16.840.1.113883.10.20.22.2.7.1:2014-06-09.

Procedure → Procedure Activity Procedure (2.16.840.1.113883.10.20.22.4.14:2014-06-09).
"""

from __future__ import annotations

from .. import codes
from .. import datatypes as dt
from .. import xmltext as xt
from ..context import Ctx
from ..index import Resource
from .base import Spec, empty, finish, is_error, start

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.7.1", "2014-06-09"),),
    code="47519-4",
    display="History of Procedures Document",
    title="Procedures",
    prefix="procedure",
    required=True,
)
# FHIR EventStatus → ProcedureAct statusCode (2.16.840.1.113883.11.20.9.22)
_STATUS = {
    "completed": "completed",
    "in-progress": "active",
    "preparation": "active",
    "on-hold": "active",
    "stopped": "aborted",
    "not-done": "cancelled",
    "unknown": "completed",
}
PROC_CODES = (
    codes.SNOMED,
    codes.CPT,
    codes.HCPCS,
    codes.LOINC,
    "2.16.840.1.113883.6.4",
    codes.ICD10CM,
    "2.16.840.1.113883.6.13",
)


def build(ctx: Ctx, body: dt.Node) -> None:
    items = [r for r in ctx.index.of("Procedure") if not is_error(r)]
    if not items:
        empty(body, SPEC)
        return
    sec, table = start(body, SPEC, ("Procedure", "Codes", "Status", "Date", "Body site"))
    ctx.each(
        "Procedure", lambda r: None if is_error(r) else _one(ctx, sec, table, r), undo=(sec, table.pending)
    )
    finish(body, sec, table, SPEC)


#: the fixed opening of the entries (Procedure Activity Procedure 2.16.840.1.113883.10.20.22.4.14:2014-06-09)
_ENTRY = xt.Wrap(
    ("entry", {"typeCode": "DRIV"}),
    ("procedure", {"classCode": "PROC", "moodCode": "EVN"}),
    first=dt.template_xml("2.16.840.1.113883.10.20.22.4.14", "2014-06-09"),
)


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, res: Resource) -> bool:
    from .problems import code_list

    start_, end = dt.period_of(res, "performed")
    status = dt.str_or(res.get("status"), "unknown")
    sites = [s for s in dt.lst(res.get("bodySite")) if isinstance(s, dict)]
    rid = table.row(
        (
            dt.cc_text(res.get("code")) or "Unknown procedure",
            code_list(res.get("code")),
            status,
            dt.display_date(start_),
            ", ".join(dt.cc_text(s) for s in sites),
        )
    )
    pr = _ENTRY.open()  # appended to sec as one string once complete
    dt.identifiers(pr, res, ctx.index.key(res))
    dt.cd(pr, "code", res.get("code"), prefer=PROC_CODES, ref=rid)
    dt.text_ref(pr, rid)
    dt.leaf(pr, "statusCode", {"code": _STATUS.get(status, "completed")})
    if end and dt.ts(end):
        dt.ivl_ts(pr, "effectiveTime", start_, end)
    else:
        dt.ts_el(pr, "effectiveTime", start_)
    for s in sites:
        if dt.first_code(s, codes.SNOMED):
            dt.cd(pr, "targetSiteCode", s, prefer=(codes.SNOMED,), text=False)
    ctx.author(pr, start_, res)
    _ENTRY.close_into(sec, pr)
    return True

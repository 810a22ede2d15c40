"""Medical Equipment Section, 2.16.840.1.113883.10.20.22.2.23:2014-06-09 (only when devices exist).

Device (US Core implantable device) → Non-Medicinal Supply Activity (4.50) whose product is a Product Instance
(4.37) carrying the UDI under the FDA root 2.16.840.1.113883.3.3719 (C-CDA R2.1 Companion Guide §4.2 UDI).
"""

from __future__ import annotations

from .. import codes
from .. import datatypes as dt
from ..context import Ctx
from ..index import Resource
from .base import Spec, entry, finish, start

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.23", "2014-06-09"),),
    code="46264-8",
    display="History of medical device use",
    title="Medical Equipment",
    prefix="device",
)
FDA_UDI = "2.16.840.1.113883.3.3719"


def _usable(d: Resource) -> bool:
    return d.get("status") != "entered-in-error"


def build(ctx: Ctx, body: dt.Node) -> None:
    if not any(_usable(d) for d in ctx.index.of("Device")):
        return
    sec, table = start(body, SPEC, ("Device", "UDI", "Status", "Expires"))
    ctx.each("Device", lambda d: _one(ctx, sec, table, d) if _usable(d) else None, undo=(sec, table.pending))
    finish(body, sec, table, SPEC)


def udi(d: Resource) -> str:
    for c in dt.lst(d.get("udiCarrier")):
        if isinstance(c, dict):
            v = dt.clean(c.get("carrierHRF")) or dt.clean(c.get("deviceIdentifier"))
            if v:
                return v
    return ""


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, d: Resource) -> bool:
    name = dt.cc_text(d.get("type"))
    if not name:
        for n in dt.lst(d.get("deviceName")):
            if isinstance(n, dict) and dt.clean(n.get("name")):
                name = dt.clean(n["name"])
                break
    status = dt.str_or(d.get("status"), "")
    code = udi(d)
    rid = table.row((name or "Device", code, status, dt.display_date(d.get("expirationDate"))))
    sup = dt.el(entry(sec), "supply", {"classCode": "SPLY", "moodCode": "EVN"})
    dt.template(sup, "2.16.840.1.113883.10.20.22.4.50", "2014-06-09")
    dt.stable_id(sup, ctx.index.key(d) + "#supply")
    dt.text_ref(sup, rid)
    dt.leaf(sup, "statusCode", {"code": "completed" if status != "active" else "active"})
    dt.leaf(sup, "effectiveTime", {"nullFlavor": "UNK"})
    pr = dt.el(dt.el(sup, "participant", {"typeCode": "PRD"}), "participantRole", {"classCode": "MANU"})
    dt.template(pr, "2.16.840.1.113883.10.20.22.4.37")
    if code:
        dt.leaf(pr, "id", {"root": FDA_UDI, "extension": code})
    else:
        dt.identifiers(pr, d, ctx.index.key(d))
    pd = dt.el(pr, "playingDevice")
    dt.cd(pd, "code", d.get("type"), prefer=(codes.SNOMED,), ref=rid)
    se = dt.el(pr, "scopingEntity")
    dt.leaf(se, "id", {"root": FDA_UDI})
    if dt.clean(d.get("manufacturer")):
        dt.leaf(se, "desc", text=dt.clean(d.get("manufacturer")))
    return True

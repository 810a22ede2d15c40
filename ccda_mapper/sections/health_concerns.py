"""Health Concerns Section, 2.16.840.1.113883.10.20.22.2.58:2015-08-01.

Condition with category ``health-concern`` (US Core) → Health Concern Act (4.132) holding a Problem
Observation.
"""

from __future__ import annotations

from .. import codes
from .. import datatypes as dt
from ..context import Ctx
from ..index import Resource
from .base import Spec, clinical_status, entry, finish, is_error, start
from .problems import ACTIVE, code_list, is_health_concern, problem_observation

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.58", "2015-08-01"),),
    code="75310-3",
    display="Health concerns Document",
    title="Health Concerns",
    prefix="concern",
)


def build(ctx: Ctx, body: dt.Node) -> None:
    if not any(is_health_concern(r) and not is_error(r) for r in ctx.index.of("Condition")):
        return
    sec, table = start(body, SPEC, ("Concern", "Codes", "Status", "Recorded"))
    ctx.each(
        "Condition",
        lambda r: _one(ctx, sec, table, r) if is_health_concern(r) and not is_error(r) else None,
        undo=(sec, table.pending),
    )
    finish(body, sec, table, SPEC)


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, res: Resource) -> bool:
    status = clinical_status(res)
    rid = table.row(
        (
            dt.cc_text(res.get("code")) or "Health concern",
            code_list(res.get("code")),
            status,
            dt.display_date(res.get("recordedDate")),
        )
    )
    act = dt.el(entry(sec), "act", {"classCode": "ACT", "moodCode": "EVN"})
    dt.template(act, "2.16.840.1.113883.10.20.22.4.132", "2015-08-01")
    dt.stable_id(act, ctx.index.key(res) + "#concern")
    dt.simple_code_leaf(act, "code", "75310-3", codes.LOINC, "Health concern", "LOINC")
    dt.text_ref(act, rid)
    active = status in ACTIVE
    dt.leaf(act, "statusCode", {"code": "active" if active else "completed"})
    onset, _ = dt.period_of(res, "onset")
    dt.ivl_ts(act, "effectiveTime", res.get("recordedDate") or onset)
    er = dt.el(act, "entryRelationship", {"typeCode": "REFR"})
    problem_observation(ctx, er, res, rid, active)
    return True

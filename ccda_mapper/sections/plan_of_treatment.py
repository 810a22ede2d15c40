"""Plan of Treatment Section, 2.16.840.1.113883.10.20.22.2.10:2014-06-09.

CarePlan activities → Planned Act (4.39); ServiceRequest → Planned Procedure (4.41), Planned Observation
(4.44) or Planned Act by category.  Planned entries SHALL have statusCode "active" (CONF:1098-30430 and
siblings), so only plans and requests still in force become entries; finished ones stay in the narrative
table.
"""

from __future__ import annotations

from typing import Any

from .. import codes
from .. import datatypes as dt
from ..context import Ctx
from ..index import Resource
from .base import Spec, empty, entry, finish, is_error, start
from .procedures import PROC_CODES

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.10", "2014-06-09"),),
    code="18776-5",
    display="Plan of care note",
    title="Plan of Treatment",
    prefix="plan",
    required=True,
)
_CURRENT = frozenset(("active", "draft", "on-hold", "not-started", "scheduled", "in-progress"))
_REFERRAL = "3457005"
_CARE_PLAN = {"system": "http://snomed.info/sct", "code": "734163000", "display": "Care plan"}


def is_referral(res: Resource) -> bool:
    return any(dt.has_code(c, codes.SNOMED, (_REFERRAL,)) for c in dt.lst(res.get("category")))


def build(ctx: Ctx, body: dt.Node) -> None:
    plans = [r for r in ctx.index.of("CarePlan") if not is_error(r)]
    requests = [r for r in ctx.index.of("ServiceRequest") if not is_error(r)]
    if not plans and not requests:
        empty(body, SPEC)
        return
    sec, table = start(body, SPEC, ("Planned item", "Type", "Status", "Date"))
    ctx.each(
        "CarePlan", lambda r: None if is_error(r) else _plan(ctx, sec, table, r), undo=(sec, table.pending)
    )
    ctx.each(
        "ServiceRequest",
        lambda r: None if is_error(r) else _request(ctx, sec, table, r),
        undo=(sec, table.pending),
    )
    finish(body, sec, table, SPEC)


def _plan(ctx: Ctx, sec: dt.Node, table: dt.Table, res: Resource) -> bool:
    status = dt.str_or(res.get("status"), "unknown")
    start_, _ = dt.period_of(res, "period")
    cats = [c for c in dt.lst(res.get("category")) if isinstance(c, dict)]
    title = (
        dt.clean(res.get("title")) or next((dt.cc_text(c) for c in cats if dt.cc_text(c)), "") or "Care plan"
    )
    acts = [a for a in dt.lst(res.get("activity")) if isinstance(a, dict)]
    details = [a["detail"] for a in acts if isinstance(a.get("detail"), dict)]
    if not details:
        rid = table.row((title, "Care plan", status, dt.display_date(start_)))
        if status in _CURRENT:
            # the plan's own category codes first; SNOMED "Care plan" when none of them is SNOMED (Planned Act
            # code SHOULD be SNOMED/LOINC, and readers need a concept to name the act)
            codings = [c for cat in cats for c in dt.lst(cat.get("coding")) if isinstance(c, dict)]
            concept = {"coding": [*codings, _CARE_PLAN], "text": title}
            _planned_act(ctx, sec, res, concept, rid, start_, ctx.index.key(res))
        return True
    for i, d in enumerate(details):
        dstatus = dt.str_or(d.get("status"), status)
        when, _ = dt.period_of(d, "scheduled")
        rid = table.row((dt.cc_text(d.get("code")) or title, title, dstatus, dt.display_date(when or start_)))
        if status in _CURRENT and dstatus in _CURRENT:
            _planned_act(
                ctx, sec, res, d.get("code"), rid, when or start_, f"{ctx.index.key(res)}#activity{i}"
            )
    return True


def _planned_act(ctx: Ctx, sec: dt.Node, res: Resource, concept: Any, rid: str, when: Any, seed: str) -> None:
    act = dt.el(entry(sec), "act", {"classCode": "ACT", "moodCode": "INT"})
    dt.template(act, "2.16.840.1.113883.10.20.22.4.39", "2014-06-09")
    dt.stable_id(act, seed)
    dt.cd(act, "code", concept, prefer=(codes.SNOMED, codes.LOINC, codes.CPT), ref=rid)
    dt.text_ref(act, rid)
    dt.leaf(act, "statusCode", {"code": "active"})
    if dt.ts(when):
        dt.leaf(act, "effectiveTime", {"value": dt.ts(when) or ""})
    ctx.author(act, res.get("created") or res.get("authoredOn"), res)


def _request(ctx: Ctx, sec: dt.Node, table: dt.Table, res: Resource) -> bool:
    status = dt.str_or(res.get("status"), "unknown")
    when, _ = dt.period_of(res, "occurrence")
    when = when or res.get("authoredOn")
    cats = [c for c in dt.lst(res.get("category")) if isinstance(c, dict)]
    rid = table.row(
        (
            dt.cc_text(res.get("code")) or "Requested service",
            "; ".join(dt.cc_text(c) for c in cats) or "Service request",
            status,
            dt.display_date(when),
        )
    )
    if status not in _CURRENT:
        return True
    if any(dt.has_code(c, codes.SNOMED, ("387713003",)) for c in cats):
        el = dt.el(entry(sec), "procedure", {"classCode": "PROC", "moodCode": "RQO"})
        dt.template(el, "2.16.840.1.113883.10.20.22.4.41", "2014-06-09")
        prefer: tuple[str, ...] = PROC_CODES
    elif any(dt.has_code(c, codes.SNOMED, ("108252007", "363679005")) for c in cats):
        el = dt.el(entry(sec), "observation", {"classCode": "OBS", "moodCode": "RQO"})
        dt.template(el, "2.16.840.1.113883.10.20.22.4.44", "2014-06-09")
        prefer = (codes.LOINC, codes.SNOMED)
    else:
        el = dt.el(entry(sec), "act", {"classCode": "ACT", "moodCode": "RQO"})
        dt.template(el, "2.16.840.1.113883.10.20.22.4.39", "2014-06-09")
        prefer = (codes.SNOMED, codes.LOINC, codes.CPT)
    dt.identifiers(el, res, ctx.index.key(res))
    dt.cd(el, "code", res.get("code"), prefer=prefer, ref=rid)
    dt.text_ref(el, rid)
    dt.leaf(el, "statusCode", {"code": "active"})
    if dt.ts(when):
        dt.leaf(el, "effectiveTime", {"value": dt.ts(when) or ""})
    ctx.author(el, res.get("authoredOn"), res)
    return True

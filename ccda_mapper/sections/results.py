"""Results Section (entries required), 2.16.840.1.113883.10.20.22.2.3.1:2015-08-01.

DiagnosticReport → Result Organizer (4.1) with its result Observations as Result Observations (4.2); a panel
Observation (hasMember) → organizer of its members; every other result Observation → an organizer of one.
Observations with components only (no value of their own) give one Result Observation per component.
"""

from __future__ import annotations

from typing import Any

from .. import codes
from .. import datatypes as dt
from .. import xmltext as xt
from ..context import Ctx
from ..index import Resource
from .base import Spec, empty, finish, start
from .observations import (
    effective,
    interpretation,
    kind,
    members,
    of_kind,
    reference_range,
    result_status,
    usable,
    value_text,
    write_value,
)

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.3.1", "2015-08-01"),),
    code="30954-2",
    display="Relevant diagnostic tests/laboratory data Narrative",
    title="Results",
    prefix="result",
    required=True,
)
_CODES = (codes.LOINC, codes.SNOMED, codes.CPT)


def build(ctx: Ctx, body: dt.Node) -> None:
    reports = [r for r in ctx.index.of("DiagnosticReport") if usable(r)]
    observations = of_kind(ctx, "result")
    if not reports and not observations:
        empty(body, SPEC)
        return
    sec, table = start(body, SPEC, ("Test", "Result", "Interpretation", "Reference range", "Date", "Panel"))
    consumed: set[int] = set()
    undo = (sec, table.pending)
    for rep in reports:
        ctx.guard(rep, lambda r: _report(ctx, sec, table, r, consumed), undo)
    for o in observations:
        if o.get("hasMember") and id(o) not in consumed:
            mem = [m for m in members(ctx, o) if id(m) not in consumed and usable(m)]
            if mem:
                consumed.add(id(o))
                consumed.update(id(m) for m in mem)
                # guard calls the function at once: the loop's current members are the ones written
                ctx.guard(o, lambda r: _organizer(ctx, sec, table, r, mem), undo)  # noqa: B023
    for o in observations:
        if id(o) not in consumed:
            consumed.add(id(o))
            ctx.guard(o, lambda r: _organizer(ctx, sec, table, r, [r]), undo)
    finish(body, sec, table, SPEC)


def _report(ctx: Ctx, sec: dt.Node, table: dt.Table, rep: Resource, consumed: set[int]) -> None:
    mem = [m for m in members(ctx, rep) if usable(m) and kind(m) != "vital"]
    flat: list[Resource] = []
    for m in mem:
        sub = [x for x in members(ctx, m) if usable(x)] if m.get("hasMember") else []
        if sub:
            flat.extend(sub)
            consumed.add(id(m))
        else:
            flat.append(m)
    flat = [m for m in flat if id(m) not in consumed]
    if not flat:
        conclusion = dt.clean(rep.get("conclusion"))
        cc = rep.get("conclusionCode")
        if not conclusion and not (isinstance(cc, list) and cc):
            if not rep.get("result"):
                text_only = bool(rep.get("presentedForm"))
                ctx.index.skip(
                    rep,
                    "report text only: in the Notes section (once if a DocumentReference has the same text)"
                    if text_only
                    else "DiagnosticReport without results, conclusion or text",
                )
            return
        pseudo: dict[str, Any] = {
            "resourceType": "Observation",
            "code": rep.get("code"),
            "status": rep.get("status"),
            "effectiveDateTime": effective(rep)[0],
        }
        if isinstance(cc, list) and cc and isinstance(cc[0], dict):
            pseudo["valueCodeableConcept"] = cc[0]
        else:
            pseudo["valueString"] = conclusion
        _organizer(ctx, sec, table, rep, [pseudo], ctx.index.key(rep) + "#conclusion")
        return
    consumed.update(id(m) for m in flat)
    _organizer(ctx, sec, table, rep, flat)


#: the fixed parts of the entries, written once (the entries are built as text: see ``xmltext``)
_BATTERY, _CLUSTER = (
    xt.Wrap(
        ("entry", {"typeCode": "DRIV"}),
        ("organizer", {"classCode": cls, "moodCode": "EVN"}),
        first=dt.template_xml("2.16.840.1.113883.10.20.22.4.1", "2015-08-01"),
    )
    for cls in ("BATTERY", "CLUSTER")
)
_OBSERVATION = xt.Wrap(
    ("component", None),
    ("observation", {"classCode": "OBS", "moodCode": "EVN"}),
    first=dt.template_xml("2.16.840.1.113883.10.20.22.4.2", "2015-08-01"),
)
_STATUS_XML: dict[str, str] = {}
_UNSET: Any = object()


def _status(res: Resource) -> str:
    s = result_status(res)
    hit = _STATUS_XML.get(s)
    if hit is None:
        hit = _STATUS_XML[s] = xt.leaf("statusCode", {"code": s})
    return hit


def _organizer(
    ctx: Ctx,
    sec: dt.Node,
    table: dt.Table,
    head: Resource,
    obs: list[Resource],
    pseudo_key: str | None = None,
) -> None:
    """Result Organizer (2.16.840.1.113883.10.20.22.4.1:2015-08-01), written into ``sec`` as one string once
    complete (a resource that breaks half-way leaves nothing behind)."""
    wrap = _BATTERY if len(obs) > 1 else _CLUSTER
    org = wrap.open()
    if head is obs[0]:  # an organizer around one observation: its own id, not the observation's
        dt.stable_id(org, ctx.index.key(head) + "#organizer")
    else:
        dt.identifiers(org, head, ctx.index.key(head))
    # an organizer around one plain observation has that observation's code: render the concept once
    head_comps = _by_components(head)
    single = len(obs) == 1 and head is obs[0] and not head_comps
    obs_code = None
    if single:
        org_code, obs_code = dt.cd_pair("code", head.get("code"), _CODES, f"{table.prefix}{table.rows + 1}")
        org.append(org_code)
    else:
        dt.cd(org, "code", head.get("code"), prefer=_CODES)
    org.append(_status(head))
    effs = [effective(o) for o in obs]
    starts = [s for s in (dt.ts(e[0]) for e in effs) if s]
    low, high = effs[0] if head is obs[0] else effective(head)
    if not dt.ts(low) and starts:
        low = None
    lo = dt.ts(low) or (min(starts) if starts else None)
    hi = dt.ts(high) or (max(starts) if starts else None) or lo
    if lo or hi:  # CONF:1198-32488/32489: an organizer effectiveTime has both low and high
        # a TS holds digits, '.', '+' and '-' only: nothing to escape
        org.append(
            xt.wrapped(
                "effectiveTime",
                None,
                (f'<low value="{lo}"/>' if lo else '<low nullFlavor="UNK"/>')
                + (f'<high value="{hi}"/>' if hi else '<high nullFlavor="UNK"/>'),
            )
        )
    ctx.author(org, head.get("issued"), head)
    panel = dt.cc_text(head.get("code")) if len(obs) > 1 or head is not obs[0] else ""
    for o, eff in zip(obs, effs, strict=True):
        comps = head_comps if o is head else _by_components(o)
        if comps:
            for i, c in enumerate(comps):
                sub = {
                    **c,
                    "resourceType": "Observation",
                    "status": o.get("status"),
                    "effectiveDateTime": eff[0],
                }
                _observation(
                    ctx, org, table, sub, dt.cc_text(o.get("code")), f"{ctx.index.key(o)}#component{i}"
                )
        else:
            _observation(ctx, org, table, o, panel, pseudo_key or ctx.index.key(o), obs_code, eff[0])
    wrap.close_into(sec, org)


def _by_components(o: Resource) -> list[dict[str, Any]]:
    """The components an Observation is reported by: those of one without a value of its own."""
    comps = [c for c in dt.lst(o.get("component")) if isinstance(c, dict)]
    return comps if comps and not any(k.startswith("value") for k in o) else []


def _observation(
    ctx: Ctx,
    org: list[Any],
    table: dt.Table,
    o: Resource,
    panel: str,
    key: str,
    code_xml: str | None = None,
    start_: Any = _UNSET,
) -> None:
    """Result Observation (2.16.840.1.113883.10.20.22.4.2:2015-08-01), appended to the organizer's parts
    (``start_``: its effective start when the organizer already looked it up)."""
    if start_ is _UNSET:
        start_ = effective(o)[0]
    obs = _OBSERVATION.open()
    dt.identifiers(obs, o, key)
    n = table.rows + 1
    rid = f"{table.prefix}{n}"
    if code_xml is not None:  # rendered with the organizer's (same concept, same narrative row)
        obs.append(code_xml)
    else:
        dt.cd(obs, "code", o.get("code"), prefer=_CODES, ref=rid)
    dt.text_ref(obs, rid)
    obs.append(_status(o))
    dt.ts_el(obs, "effectiveTime", start_)
    write_value(obs, o)
    if "interpretation" in o:
        interpretation(obs, o)
    ctx.author(obs, o.get("issued"), o)
    rr = reference_range(obs, o) if "referenceRange" in o else ""
    _OBSERVATION.close_into(org, obs)
    interp = (
        "; ".join(dt.cc_text(i) for i in dt.lst(o.get("interpretation")) if isinstance(i, dict))
        if "interpretation" in o
        else ""
    )
    table.row(
        (
            dt.cc_text(o.get("code")) or "Unknown test",
            value_text(o),
            interp,
            rr,
            dt.display_date(start_),
            panel,
        )
    )

"""Vital Signs Section (entries required), 2.16.840.1.113883.10.20.22.2.4.1:2015-08-01.

Vital-sign Observations grouped by time (and encounter) → Vital Signs Organizer (4.26) of Vital Sign
Observations (4.27).  Panels (blood pressure 85354-9) contribute one observation per component.  A vital sign
without a numeric value is skipped with a reason: CONF:1098-7305 requires ``value xsi:type="PQ"``.
"""

from __future__ import annotations

from typing import Any

from .. import codes
from .. import datatypes as dt
from .. import xmltext as xt
from ..context import Ctx
from ..index import Resource
from .base import Spec, empty, finish, start
from .observations import interpretation, members, of_kind

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.4.1", "2015-08-01"),),
    code="8716-3",
    display="Vital signs",
    title="Vital Signs",
    prefix="vital",
    required=True,
)


def _numeric(o: dict[str, Any]) -> bool:
    q = o.get("valueQuantity")
    return isinstance(q, dict) and dt.num(q.get("value")) is not None


def _flatten(ctx: Ctx, o: Resource, key: str) -> list[tuple[Resource, str]]:
    """The measurable parts of a vital sign: itself (when it has a quantity), its components, its members."""
    out: list[tuple[Resource, str]] = []
    if _numeric(o):
        out.append((o, key))
    for i, c in enumerate(dt.lst(o.get("component"))):
        if isinstance(c, dict) and _numeric(c):
            out.append((c, f"{key}#component{i}"))
    return out


def build(ctx: Ctx, body: dt.Node) -> None:
    vitals = of_kind(ctx, "vital")
    groups: dict[tuple[str, str], list[tuple[Resource, Resource, str]]] = {}
    consumed: set[int] = set()
    for o in vitals:
        if id(o) in consumed:
            continue
        parts = _flatten(ctx, o, ctx.index.key(o))
        for m in members(ctx, o):
            consumed.add(id(m))
            parts.extend(_flatten(ctx, m, ctx.index.key(m)))
        if not parts:
            ctx.index.skip(o, "vital sign without a numeric value (C-CDA requires PQ)")
            continue
        when = o.get("effectiveDateTime")
        if not isinstance(when, str):
            when = (
                dt.obj(o.get("effectivePeriod")).get("start")
                if isinstance(o.get("effectivePeriod"), dict)
                else None
            )
        if not dt.ts(when):
            ctx.index.skip(o, "vital sign without an effective time")
            continue
        enc = dt.obj(o.get("encounter"))
        gkey = (str(when), str(enc.get("reference", "")))
        groups.setdefault(gkey, []).extend((o, part, k) for part, k in parts)
    if not groups:
        empty(body, SPEC)
        return
    sec, table = start(body, SPEC, ("Date", "Vital sign", "Value", "Interpretation"))
    for (when, _enc), items in groups.items():
        # guard calls the function at once: the loop's current group is the one written
        ctx.guard(items[0][0], lambda _r: _organizer(ctx, sec, table, when, items), (sec, table.pending))  # noqa: B023
    finish(body, sec, table, SPEC)


def _fixed_code() -> str:
    parts: list[Any] = []
    c = dt.simple_code(parts, "code", "46680005", codes.SNOMED, "Vital Signs", "SNOMED CT")
    dt.leaf(
        c,
        "translation",
        {
            "code": "74728-7",
            "codeSystem": codes.LOINC,
            "codeSystemName": "LOINC",
            "displayName": "Vital signs, weight, height, head circumference, oximetry, BMI, and BSA panel",
        },
    )
    return xt.join(parts)


#: the fixed parts of the entries, written once (the entries are built as text: see ``xmltext``)
_ORGANIZER = xt.Wrap(
    ("entry", {"typeCode": "DRIV"}),
    ("organizer", {"classCode": "CLUSTER", "moodCode": "EVN"}),
    first=dt.template_xml("2.16.840.1.113883.10.20.22.4.26", "2015-08-01"),
)
_ORGANIZER_CODE = _fixed_code() + '<statusCode code="completed"/>'
_OBSERVATION = xt.Wrap(
    ("component", None),
    ("observation", {"classCode": "OBS", "moodCode": "EVN"}),
    first=dt.template_xml("2.16.840.1.113883.10.20.22.4.27", "2014-06-09"),
)


def _organizer(
    ctx: Ctx, sec: dt.Node, table: dt.Table, when: str, items: list[tuple[Resource, Resource, str]]
) -> None:
    """Vital Signs Organizer (2.16.840.1.113883.10.20.22.4.26:2015-08-01), written into ``sec`` as one
    string once complete."""
    org = _ORGANIZER.open()  # appended to sec as one string once complete
    dt.stable_id(org, items[0][2] + "#vitals")
    org.append(_ORGANIZER_CODE)
    dt.leaf(org, "effectiveTime", {"value": dt.ts(when) or ""})
    for res, part, key in items:
        _observation(ctx, org, table, res, part, key, when)
    _ORGANIZER.close_into(sec, org)


def _observation(
    ctx: Ctx, org: list[Any], table: dt.Table, res: Resource, part: dict[str, Any], key: str, when: str
) -> None:
    """Vital Sign Observation (2.16.840.1.113883.10.20.22.4.27:2014-06-09)."""
    q = part["valueQuantity"]
    if dt.num(q.get("value")) is None:
        ctx.index.skip(res, "vital sign value is not a number")
        return
    obs = _OBSERVATION.open()
    if part is res:
        dt.identifiers(obs, res, key)
    else:
        dt.stable_id(obs, key)
    rid = f"{table.prefix}{table.rows + 1}"
    dt.cd(obs, "code", part.get("code"), prefer=(codes.LOINC,), ref=rid)
    dt.text_ref(obs, rid)
    obs.append('<statusCode code="completed"/>')  # CONF:1098-7303
    dt.leaf(obs, "effectiveTime", {"value": dt.ts(when) or ""})
    dt.pq(obs, "value", q)
    interpretation(obs, part)
    ctx.author(obs, res.get("issued"), res)
    _OBSERVATION.close_into(org, obs)
    interp = "; ".join(dt.cc_text(i) for i in dt.lst(part.get("interpretation")) if isinstance(i, dict))
    table.row(
        (dt.display_date(when), dt.cc_text(part.get("code")) or "Vital sign", dt.quantity_text(q), interp)
    )

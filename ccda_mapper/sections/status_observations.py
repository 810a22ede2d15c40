"""Functional and Mental Status sections share one shape: a table of Observations, each an entry."""

from __future__ import annotations

from .. import codes
from .. import datatypes as dt
from ..context import Ctx
from ..index import Resource
from .base import Spec, entry, finish, start
from .observations import effective, of_kind, value_text, write_value


def build(
    ctx: Ctx,
    body: dt.Node,
    spec: Spec,
    wanted: str,
    template: tuple[str, str],
    fixed_code: tuple[str, str, str, str] | None = None,
) -> None:
    """``fixed_code`` = (SNOMED code, display, LOINC translation, display) for fixed-code templates."""
    items = of_kind(ctx, wanted)
    if not items:
        return
    sec, table = start(body, spec, ("Observation", "Value", "Date"))
    ctx.each(items, lambda o: _one(ctx, sec, table, o, template, fixed_code), undo=(sec, table.pending))
    finish(body, sec, table, spec)


def _one(
    ctx: Ctx,
    sec: dt.Node,
    table: dt.Table,
    o: Resource,
    template: tuple[str, str],
    fixed_code: tuple[str, str, str, str] | None,
) -> bool:
    start_, end = effective(o)
    rid = table.row((dt.cc_text(o.get("code")) or "Observation", value_text(o), dt.display_date(start_)))
    ob = dt.el(entry(sec), "observation", {"classCode": "OBS", "moodCode": "EVN"})
    dt.template(ob, *template)
    dt.identifiers(ob, o, ctx.index.key(o))
    if fixed_code:
        c = dt.simple_code(ob, "code", fixed_code[0], codes.SNOMED, fixed_code[1], "SNOMED CT")
        dt.leaf(
            c,
            "translation",
            {
                "code": fixed_code[2],
                "codeSystem": codes.LOINC,
                "codeSystemName": "LOINC",
                "displayName": fixed_code[3],
            },
        )
    else:
        # Functional Status Observation: code SHALL be LOINC (CONF:1098-31523); others become translations
        dt.cd(ob, "code", o.get("code"), prefer=(codes.LOINC,), ref=rid, require=codes.LOINC)
    dt.text_ref(ob, rid)
    dt.leaf(ob, "statusCode", {"code": "completed"})
    dt.ivl_ts(ob, "effectiveTime", start_, end)
    write_value(ob, o)
    ctx.author(ob, o.get("issued"), o)
    return True

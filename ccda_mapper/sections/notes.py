"""Notes Section, 2.16.840.1.113883.10.20.22.2.65:2016-11-01 (C-CDA R2.1 Companion Guide), when notes exist.

DocumentReference (US Core clinical notes) → Note Activity (4.202:2016-11-01).  Plain-text attachments are
decoded into the narrative (they are the note); other media types are named, not embedded.
"""

from __future__ import annotations

import binascii

from .. import codes
from .. import datatypes as dt
from .. import xmltext as xt
from ..context import Ctx
from ..index import Resource
from .base import Spec, finish, start

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.65", "2016-11-01"),),
    code="11488-4",
    display="Consult note",
    title="Notes",
    prefix="note",
)
MAX_NOTE = 20000  # characters of one note kept in the narrative


def _usable(d: Resource) -> bool:
    return d.get("status") != "entered-in-error" and d.get("docStatus") != "entered-in-error"


def report_notes(ctx: Ctx) -> list[tuple[Resource, str]]:
    """DiagnosticReports whose text (presentedForm) no DocumentReference already carries, shaped as notes.

    US Core servers often expose one note twice (DocumentReference and DiagnosticReport); it is sent once.
    """
    carried = set()
    for d in ctx.index.of("DocumentReference"):
        for c in dt.lst(d.get("content")):
            att = c.get("attachment") if isinstance(c, dict) else None
            if isinstance(att, dict):
                carried.add(att.get("data") or att.get("url"))
    out = []
    for r in ctx.index.of("DiagnosticReport"):
        forms = [a for a in dt.lst(r.get("presentedForm")) if isinstance(a, dict)]
        if not forms or r.get("status") == "entered-in-error":
            continue
        if all((a.get("data") or a.get("url")) in carried for a in forms):
            continue
        when, _ = dt.period_of(r, "effective")
        out.append(
            (
                {
                    "resourceType": "DocumentReference",
                    "identifier": r.get("identifier"),
                    "type": r.get("code"),
                    "date": when or r.get("issued"),
                    "author": r.get("performer"),
                    "content": [{"attachment": a} for a in forms],
                },
                ctx.index.key(r),
            )
        )
    return out


def build(ctx: Ctx, body: dt.Node) -> None:
    extra = report_notes(ctx)
    if not extra and not any(_usable(d) for d in ctx.index.of("DocumentReference")):
        return
    sec, table = start(body, SPEC, ("Note", "Date", "Author", "Content"))
    ctx.each(
        "DocumentReference",
        lambda d: _one(ctx, sec, table, d, ctx.index.key(d)) if _usable(d) else None,
        undo=(sec, table.pending),
    )
    for note, key in extra:
        # guard calls the function at once: the loop's current key is the one used
        ctx.guard(note, lambda n: _one(ctx, sec, table, n, key), (sec, table.pending))  # noqa: B023
    finish(body, sec, table, SPEC)


def note_text(d: Resource) -> str:
    """The first text/plain (or text/*) attachment decoded, else a description of what is attached."""
    described = []
    for c in dt.lst(d.get("content")):
        att = c.get("attachment") if isinstance(c, dict) else None
        if not isinstance(att, dict):
            continue
        ctype = dt.str_or(att.get("contentType"), "")
        data = att.get("data")
        if ctype.startswith("text/") and "html" not in ctype and isinstance(data, str):
            try:
                # what base64.b64decode(data) does for text, without its wrapper
                text = binascii.a2b_base64(data.encode("ascii")).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                continue
            text = dt.clean(text).strip()
            return text[:MAX_NOTE] + (" …" if len(text) > MAX_NOTE else "")
        described.append(dt.clean(att.get("title")) or ctype or "attachment")
    return "Attached: " + ", ".join(described) if described else dt.clean(d.get("description"))


#: the fixed opening of the entries (Note Activity 2.16.840.1.113883.10.20.22.4.202:2016-11-01)
_CODE = {"code": "34109-9", "codeSystem": codes.LOINC, "codeSystemName": "LOINC", "displayName": "Note"}
_ENTRY = xt.Wrap(
    ("entry", {"typeCode": "DRIV"}),
    ("act", {"classCode": "ACT", "moodCode": "EVN"}),
    first=dt.template_xml("2.16.840.1.113883.10.20.22.4.202", "2016-11-01"),
)


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, d: Resource, key: str) -> bool:
    when = d.get("date") or dt.obj(dt.obj(d.get("context")).get("period")).get("start")
    authors = [ctx.index.resolve(a, d) for a in dt.lst(d.get("author"))]
    who = next(
        (
            a
            for a in authors
            if a is not None and a.get("resourceType") in ("Practitioner", "PractitionerRole")
        ),
        None,
    )
    who_name = dt.name_text(dt.best_name((who or {}).get("name"))) if who else ""
    rid = table.row((dt.cc_text(d.get("type")) or "Note", dt.display_date(when), who_name, note_text(d)))
    act = _ENTRY.open()  # appended to sec as one string once complete
    dt.identifiers(act, d, key)
    translations = []
    for coding in dt.lst(dt.obj(d.get("type")).get("coding")):
        a = dt.coding_attrs(coding) if isinstance(coding, dict) else None
        if a is not None and a["codeSystem"] == codes.LOINC:
            translations.append(xt.leaf("translation", a))
    act.append(xt.wrapped("code", _CODE, "".join(translations)))
    dt.text_ref(act, rid)
    act.append('<statusCode code="completed"/>')
    dt.ts_el(act, "effectiveTime", when)
    ctx.author(act, when, {"author": d.get("author")} if who else None)
    _ENTRY.close_into(sec, act)
    return True

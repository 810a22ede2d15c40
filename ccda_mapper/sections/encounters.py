"""Encounters Section (entries optional), 2.16.840.1.113883.10.20.22.2.22.1:2015-08-01.

Encounter → Encounter Activity (4.49:2015-08-01) with performers, the service delivery location (4.32) and the
reasons as Indications (4.19).
"""

from __future__ import annotations

from .. import codes
from .. import datatypes as dt
from .. import xmltext as xt
from ..context import Ctx, practitioner_xml
from ..index import Resource
from .base import Spec, empty, finish, is_error, start

SPEC = Spec(
    templates=(
        ("2.16.840.1.113883.10.20.22.2.22", "2015-08-01"),
        ("2.16.840.1.113883.10.20.22.2.22.1", "2015-08-01"),
    ),
    code="46240-8",
    display="History of Hospitalizations+Outpatient visits Narrative",
    title="Encounters",
    prefix="encounter",
    required=True,
)
_ENC_CODES = (codes.CPT, codes.SNOMED, codes.HCPCS, codes.ACT_CODE)
#: the fixed parts of the entries, written once (the entries are built as text: see ``xmltext``)
_ENCOUNTER = xt.Wrap(
    ("entry", {"typeCode": "DRIV"}),
    ("encounter", {"classCode": "ENC", "moodCode": "EVN"}),
    first=dt.template_xml("2.16.840.1.113883.10.20.22.4.49", "2015-08-01"),
)
_PERFORMER = xt.Wrap(("performer", None))
_LOCATION = xt.Wrap(("participant", {"typeCode": "LOC"}))
_INDICATION = xt.Wrap(
    ("entryRelationship", {"typeCode": "RSON"}),
    ("observation", {"classCode": "OBS", "moodCode": "EVN"}),
    first=dt.template_xml("2.16.840.1.113883.10.20.22.4.19", "2014-06-09"),
)
_INDICATION_CODE = (
    xt.leaf(
        "code",
        {
            "code": "404684003",
            "codeSystem": codes.SNOMED,
            "codeSystemName": "SNOMED CT",
            "displayName": "Clinical finding",
        },
    )
    + '<statusCode code="completed"/>'
)


def build(ctx: Ctx, body: dt.Node) -> None:
    items = [r for r in ctx.index.of("Encounter") if not is_error(r)]
    if not items:
        empty(body, SPEC)
        return
    sec, table = start(body, SPEC, ("Encounter", "Date", "End", "Location", "Reason"))
    ctx.each(
        "Encounter", lambda r: None if is_error(r) else _one(ctx, sec, table, r), undo=(sec, table.pending)
    )
    finish(body, sec, table, SPEC)


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, res: Resource) -> bool:
    start_, end = dt.period_of(res, "period")
    types = [t for t in dt.lst(res.get("type")) if isinstance(t, dict)]
    concept = types[0] if types else None
    cls = res.get("class")
    if concept is None and isinstance(cls, dict):
        concept = {"coding": [cls]}
    locs = []
    for loc in dt.lst(res.get("location")):
        if isinstance(loc, dict):
            target = ctx.index.resolve(loc.get("location"), res)
            if target is not None:
                locs.append(target)
    reasons = [r for r in dt.lst(res.get("reasonCode")) if isinstance(r, dict)]
    # when each reason held: a referenced Condition's onset, else the visit itself
    reason_times: list[object] = [start_] * len(reasons)
    for ref in dt.lst(res.get("reasonReference")):
        target = ctx.index.resolve(ref, res)
        if target is not None and isinstance(target.get("code"), dict):
            reasons.append(target["code"])
            reason_times.append(dt.period_of(target, "onset")[0] or start_)
    rid = table.row(
        (
            dt.cc_text(concept) or "Encounter",
            dt.display_date(start_),
            dt.display_date(end),
            ", ".join(dt.clean(x.get("name")) for x in locs),
            "; ".join(dt.cc_text(r) for r in reasons),
        )
    )
    en = _ENCOUNTER.open()  # appended to sec as one string once complete
    key = ctx.index.key(res)
    dt.identifiers(en, res, key)
    dt.cd(en, "code", concept, prefer=_ENC_CODES, ref=rid)
    dt.text_ref(en, rid)
    dt.ivl_ts(en, "effectiveTime", start_, end)
    for part in dt.lst(res.get("participant")):
        if not isinstance(part, dict):
            continue
        who = ctx.index.resolve(part.get("individual"), res)
        if who is not None and who.get("resourceType") in ("Practitioner", "PractitionerRole"):
            en.append(_PERFORMER.around(practitioner_xml(ctx, who, "assignedEntity")))
    for loc in locs:
        _location(ctx, en, loc)
    for i, r in enumerate(reasons):
        _indication(en, r, f"{key}#reason{i}", reason_times[i] if i < len(reason_times) else start_)
    _ENCOUNTER.close_into(sec, en)
    return True


def _location(ctx: Ctx, en: dt.Parent, loc: Resource) -> None:
    """Service Delivery Location (2.16.840.1.113883.10.20.22.4.32): code from HealthcareServiceLocation
    (HSLOC)."""
    if loc.get("resourceType") != "Location":
        return
    role = ctx.entity_xml(loc, "participantRole", lambda: _location_role(ctx, loc))
    en.append(_LOCATION.around(role))


def _location_role(ctx: Ctx, loc: Resource) -> dt.Node:
    pr = dt.Node("participantRole", {"classCode": "SDLOC"})
    dt.template(pr, "2.16.840.1.113883.10.20.22.4.32")
    dt.identifiers(pr, loc, ctx.index.key(loc))
    hsloc = None
    for t in dt.lst(loc.get("type")):
        hsloc = hsloc or dt.first_code(t, "2.16.840.1.113883.6.259")
    if hsloc:
        dt.leaf(
            pr,
            "code",
            {
                "code": hsloc,
                "codeSystem": "2.16.840.1.113883.6.259",
                "codeSystemName": "HealthcareServiceLocation",
            },
        )
    else:
        dt.leaf(pr, "code", {"nullFlavor": "UNK"})
    dt.addr(pr, loc.get("address"))
    dt.telecom(pr, loc.get("telecom"))
    pe = dt.el(pr, "playingEntity", {"classCode": "PLC"})
    dt.leaf(pe, "name", text=dt.clean(loc.get("name")) or "Unknown location")
    return pr


def _indication(en: dt.Parent, cc: object, seed: str, when: object) -> None:
    """Indication (2.16.840.1.113883.10.20.22.4.19:2014-06-09): the reason for the encounter, with the time it
    held (effectiveTime SHOULD be present, CONF:1098-7488) when the record has one."""
    ind = _INDICATION.open()
    dt.stable_id(ind, seed)
    ind.append(_INDICATION_CODE)
    if dt.ts(when):
        dt.ivl_ts(ind, "effectiveTime", when)
    dt.cd(ind, "value", cc, prefer=(codes.SNOMED, codes.ICD10CM), xsi_type="CD")
    _INDICATION.close_into(en, ind)

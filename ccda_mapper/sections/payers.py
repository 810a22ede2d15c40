"""Payers Section, 2.16.840.1.113883.10.20.22.2.18:2015-08-01 (when Coverage exists).

Coverage → Coverage Activity (4.60) → Policy Activity (4.61) with the payer performer (4.87) and the covered
party participant (4.89).  The claims themselves (ExplanationOfBenefit) travel as a separate FHIR Bundle (see
document.build), since a CCD has no place for them.
"""

from __future__ import annotations

from .. import codes
from .. import datatypes as dt
from ..context import Ctx
from ..index import Resource
from .base import Spec, entry, finish, start

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.18", "2015-08-01"),),
    code="48768-6",
    display="Payment sources Document",
    title="Insurance Providers",
    prefix="payer",
)
_REL = {
    "self": ("SELF", "self"),
    "spouse": ("SPS", "spouse"),
    "child": ("CHILD", "child"),
    "parent": ("PRN", "parent"),
    "common": ("SIGOTHR", "significant other"),
    "other": ("FAMMEMB", "family member"),
}
# CONF:1198-8904: the payer type SHOULD come from the Payer value set (Source of Payment Typology / X12)
_TYPE_SYSTEMS = (codes.SOP, "2.16.840.1.113883.6.255.1336")


def build(ctx: Ctx, body: dt.Node) -> None:
    covs = [c for c in ctx.index.of("Coverage") if c.get("status") != "entered-in-error"]
    if not covs:
        return
    sec, table = start(body, SPEC, ("Payer", "Plan / type", "Member id", "Relationship", "Period"))
    ctx.each(
        "Coverage",
        lambda c: _one(ctx, sec, table, c) if c.get("status") != "entered-in-error" else None,
        undo=(sec, table.pending),
    )
    finish(body, sec, table, SPEC)


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, cov: Resource) -> bool:
    payors = [ctx.index.resolve(p, cov) for p in dt.lst(cov.get("payor"))]
    payor = next((p for p in payors if p is not None and p.get("resourceType") == "Organization"), None)
    payor_name = dt.clean((payor or {}).get("name")) or next(
        (
            dt.clean(p.get("display"))
            for p in dt.lst(cov.get("payor"))
            if isinstance(p, dict) and p.get("display")
        ),
        "",
    )
    rel_code = (
        dt.first_code(cov.get("relationship"), "2.16.840.1.113883.4.642.3.494")
        or next(
            (c.get("code") for c in dt.lst(cov["relationship"].get("coding")) if isinstance(c, dict)),
            None,
        )
        if isinstance(cov.get("relationship"), dict)
        else None
    )
    start_, end = dt.period_of(cov, "period")
    member = dt.clean(cov.get("subscriberId"))
    for ident in dt.lst(cov.get("identifier")):
        if isinstance(ident, dict) and not member:
            member = dt.clean(ident.get("value"))
    classes = [c for c in dt.lst(cov.get("class")) if isinstance(c, dict)]
    plan = next((dt.clean(c.get("name")) or dt.clean(c.get("value")) for c in classes), "")
    rid = table.row(
        (
            payor_name or "Unknown payer",
            plan or dt.cc_text(cov.get("type")),
            member,
            dt.clean(rel_code),
            f"{dt.display_date(start_)} - {dt.display_date(end)}".strip(" -"),
        )
    )
    key = ctx.index.key(cov)
    act = dt.el(entry(sec), "act", {"classCode": "ACT", "moodCode": "EVN"})
    dt.template(act, "2.16.840.1.113883.10.20.22.4.60", "2015-08-01")
    dt.stable_id(act, key + "#coverage")
    dt.simple_code_leaf(act, "code", "48768-6", codes.LOINC, "Payment sources", "LOINC")
    dt.leaf(act, "statusCode", {"code": "completed"})
    er = dt.el(act, "entryRelationship", {"typeCode": "COMP"})
    dt.leaf(
        er, "sequenceNumber", {"value": str(cov.get("order")) if isinstance(cov.get("order"), int) else "1"}
    )
    pol = dt.el(er, "act", {"classCode": "ACT", "moodCode": "EVN"})
    dt.template(pol, "2.16.840.1.113883.10.20.22.4.61", "2015-08-01")
    dt.identifiers(pol, cov, key)
    ctype = cov.get("type")
    if isinstance(ctype, dict) and any(dt.first_code(ctype, s) for s in _TYPE_SYSTEMS):
        dt.cd_node(pol, "code", ctype, prefer=_TYPE_SYSTEMS, ref=rid)
    else:
        dt.leaf(
            dt.el(dt.el(pol, "code", {"nullFlavor": "UNK"}), "originalText"),
            "reference",
            {"value": "#" + rid},
        )
    code_el = pol[-1]
    if code_el.find("translation") is None:  # CONF:1198-32852: at least one translation
        dt.leaf(code_el, "translation", {"nullFlavor": "NI"})
    dt.text_ref(pol, rid)
    dt.leaf(pol, "statusCode", {"code": "completed"})
    # Payer Performer (2.16.840.1.113883.10.20.22.4.87)
    perf = dt.el(pol, "performer", {"typeCode": "PRF"})
    dt.template(perf, "2.16.840.1.113883.10.20.22.4.87")
    ae = dt.el(perf, "assignedEntity")
    if payor is not None:
        dt.identifiers(ae, payor, ctx.index.key(payor))
    else:
        dt.stable_id(ae, key + "#payer")
    dt.leaf(
        ae,
        "code",
        {
            "code": "PAYOR",
            "codeSystem": "2.16.840.1.113883.5.110",
            "codeSystemName": "HL7 RoleClassRelationship",
            "displayName": "invoice payor",
        },
    )
    if payor is not None:
        dt.addr(
            ae, next((a for a in dt.lst(payor.get("address")) if isinstance(a, dict)), None), required=False
        )
        dt.telecom(ae, payor.get("telecom"), required=False)
    ro = dt.el(ae, "representedOrganization")
    dt.leaf(ro, "name", text=payor_name or "Unknown payer")
    # Covered Party Participant (2.16.840.1.113883.10.20.22.4.89)
    part = dt.el(pol, "participant", {"typeCode": "COV"})
    dt.template(part, "2.16.840.1.113883.10.20.22.4.89", "2015-08-01")
    if dt.ts(start_) or dt.ts(end):
        dt.ivl_ts(part, "time", start_, end)
    pr = dt.el(part, "participantRole")
    if member:
        dt.leaf(pr, "id", {"root": dt.uid(key + "#member-system"), "extension": member})
    else:
        dt.leaf(pr, "id", {"nullFlavor": "UNK"})
    rc = _REL.get(dt.str_or_none(rel_code) or "")
    if rc:
        dt.leaf(
            pr,
            "code",
            {
                "code": rc[0],
                "displayName": rc[1],
                "codeSystem": codes.ROLE_CODE,
                "codeSystemName": "RoleCode",
            },
        )
    else:
        dt.leaf(pr, "code", {"nullFlavor": "UNK"})
    # CONF:1198-8939: the policy refers to the plan it belongs to (the plan-description act of the IG example)
    plan_act = dt.el(
        dt.el(pol, "entryRelationship", {"typeCode": "REFR"}), "act", {"classCode": "ACT", "moodCode": "DEF"}
    )
    dt.stable_id(plan_act, key + "#plan")
    dt.leaf(plan_act, "code", {"nullFlavor": "UNK"})
    dt.leaf(plan_act, "text", text=plan or dt.cc_text(cov.get("type")) or "Health plan")
    dt.leaf(plan_act, "statusCode", {"code": "active"})
    return True

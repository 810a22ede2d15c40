"""Problem Section (entries required), 2.16.840.1.113883.10.20.22.2.5.1:2015-08-01.

Condition (category problem-list-item / encounter-diagnosis, or none) → Problem Concern Act (4.3) → Problem
Observation (4.4).  Health concerns go to their own section (health_concerns.py).
"""

from __future__ import annotations

from .. import codes
from .. import datatypes as dt
from .. import xmltext as xt
from ..context import Ctx
from ..index import Resource
from .base import Spec, clinical_status, empty, finish, is_error, start

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.5.1", "2015-08-01"),),
    code="11450-4",
    display="Problem list - Reported",
    title="Problems",
    prefix="problem",
    required=True,
)
ACTIVE = frozenset(("active", "recurrence", "relapse"))
_CONDITION_CODES = (codes.SNOMED, codes.ICD10CM, "2.16.840.1.113883.6.3", codes.ICD9CM)


def category_codes(res: Resource) -> set[str]:
    out = set()
    for cat in dt.lst(res.get("category")):
        if isinstance(cat, dict):
            for c in dt.lst(cat.get("coding")):
                if isinstance(c, dict) and isinstance(c.get("code"), str):
                    out.add(c["code"])
    return out


def is_health_concern(res: Resource) -> bool:
    return "health-concern" in category_codes(res)


def build(ctx: Ctx, body: dt.Node) -> None:
    items = [r for r in ctx.index.of("Condition") if not is_error(r) and not is_health_concern(r)]
    if not items:
        empty(body, SPEC)
        return
    sec, table = start(body, SPEC, ("Problem", "Codes", "Status", "Onset", "Resolved"))
    ctx.each(
        "Condition",
        lambda r: None if is_error(r) or is_health_concern(r) else _one(ctx, sec, table, r),
        undo=(sec, table.pending),
    )
    finish(body, sec, table, SPEC)


def code_list(cc: object) -> str:
    """The codes of a concept for the narrative ("SNOMED CT 44054006; ICD-10-CM E11.9")."""
    out = []
    if isinstance(cc, dict):
        for c in dt.lst(cc.get("coding")):
            if isinstance(c, dict) and isinstance(c.get("code"), str) and isinstance(c.get("system"), str):
                row = codes.known(c["system"])
                out.append(f"{row.name if row else c['system']} {c['code']}")
    return "; ".join(out)


#: the fixed opening of the entries (Problem Concern Act 2.16.840.1.113883.10.20.22.4.3:2015-08-01)
_ENTRY = xt.Wrap(
    ("entry", {"typeCode": "DRIV"}),
    ("act", {"classCode": "ACT", "moodCode": "EVN"}),
    first=dt.template_xml("2.16.840.1.113883.10.20.22.4.3", "2015-08-01"),
)


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, res: Resource) -> bool:
    status = clinical_status(res)
    onset, _ = dt.period_of(res, "onset")
    abated, _ = dt.period_of(res, "abatement")
    rid = table.row(
        (
            dt.cc_text(res.get("code")) or "Unknown problem",
            code_list(res.get("code")),
            status,
            dt.display_date(onset),
            dt.display_date(abated),
        )
    )
    act = _ENTRY.open()  # appended to sec as one string once complete
    key = ctx.index.key(res)
    dt.stable_id(act, key + "#concern")
    dt.simple_code_leaf(act, "code", "CONC", codes.ACT_CLASS, "Concern", "HL7ActClass")
    active = status in ACTIVE
    dt.leaf(act, "statusCode", {"code": "active" if active else "completed"})
    recorded = res.get("recordedDate") or onset
    # a completed concern says when it ended (the IG: high when statusCode is completed); UNK when unknown
    dt.ivl_ts(act, "effectiveTime", recorded, None if active else (abated or recorded), high_null=not active)
    er = dt.el(act, "entryRelationship", {"typeCode": "SUBJ"})
    problem_observation(ctx, er, res, rid, active)
    _ENTRY.close_into(sec, act)
    return True


def problem_observation(ctx: Ctx, parent: dt.Node, res: Resource, rid: str, active: bool) -> None:
    """Problem Observation (2.16.840.1.113883.10.20.22.4.4:2015-08-01)."""
    obs = dt.el(parent, "observation", {"classCode": "OBS", "moodCode": "EVN"})
    dt.template(obs, "2.16.840.1.113883.10.20.22.4.4", "2015-08-01")
    dt.identifiers(obs, res, ctx.index.key(res))
    # CONF:1198-9045: code from Problem Type (SNOMED); LOINC 75326-9 as the C-CDA R2.1 errata translation
    diag = "encounter-diagnosis" in category_codes(res)
    c = dt.simple_code(
        obs,
        "code",
        "282291009" if diag else "55607006",
        codes.SNOMED,
        "Diagnosis" if diag else "Problem",
        "SNOMED CT",
    )
    dt.leaf(
        c,
        "translation",
        {"code": "75326-9", "codeSystem": codes.LOINC, "codeSystemName": "LOINC", "displayName": "Problem"},
    )
    dt.text_ref(obs, rid)
    dt.leaf(obs, "statusCode", {"code": "completed"})
    onset, _ = dt.period_of(res, "onset")
    abated, _ = dt.period_of(res, "abatement")
    dt.ivl_ts(obs, "effectiveTime", onset or res.get("recordedDate"), None if active else abated)
    dt.cd(obs, "value", res.get("code"), prefer=_CONDITION_CODES, ref=rid, xsi_type="CD")
    ctx.author(obs, res.get("recordedDate"), res)

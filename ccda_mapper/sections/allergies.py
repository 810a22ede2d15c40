"""Allergies and Intolerances Section (entries required), 2.16.840.1.113883.10.20.22.2.6.1:2015-08-01.

AllergyIntolerance → Allergy Concern Act (4.30) → Allergy - Intolerance Observation (4.7) with the substance
as a consumable participant, reactions (4.9) with severity (4.8), and criticality (4.145).
"""

from __future__ import annotations

from .. import codes
from .. import datatypes as dt
from .. import xmltext as xt
from ..context import Ctx
from ..index import Resource
from .base import Spec, clinical_status, empty, finish, is_error, start

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.6.1", "2015-08-01"),),
    code="48765-2",
    display="Allergies and adverse reactions Document",
    title="Allergies and Intolerances",
    prefix="allergy",
    required=True,
)

# (category, type) → SNOMED allergy/intolerance type (value set Allergy and Intolerance Type
# 2.16.840.1.113883.3.88.12.3221.6.2)
_TYPE = {
    ("medication", "allergy"): ("416098002", "Allergy to drug"),
    ("medication", "intolerance"): ("59037007", "Intolerance to drug"),
    ("medication", None): ("419511003", "Propensity to adverse reactions to drug"),
    ("food", "allergy"): ("414285001", "Allergy to food"),
    ("food", "intolerance"): ("235719002", "Intolerance to food"),
    ("food", None): ("418471000", "Propensity to adverse reactions to food"),
    ("environment", "allergy"): ("426232007", "Environmental allergy"),
    ("environment", None): ("419199007", "Allergy to substance"),
    ("biologic", None): ("419199007", "Allergy to substance"),
    (None, "allergy"): ("419199007", "Allergy to substance"),
    (None, "intolerance"): ("420134006", "Propensity to adverse reactions"),
}
_SEVERITY = {
    "mild": ("255604002", "Mild"),
    "moderate": ("6736007", "Moderate"),
    "severe": ("24484000", "Severe"),
}
_CRIT = {
    "low": ("CRITL", "Low Criticality"),
    "high": ("CRITH", "High Criticality"),
    "unable-to-assess": ("CRITU", "Unable to Assess Criticality"),
}
_SUBSTANCE = (codes.RXNORM, codes.SNOMED, "2.16.840.1.113883.4.9", "2.16.840.1.113883.6.209")


def build(ctx: Ctx, body: dt.Node) -> None:
    items = [r for r in ctx.index.of("AllergyIntolerance") if not is_error(r)]
    if not items:
        empty(body, SPEC)
        return
    sec, table = start(body, SPEC, ("Substance", "Reaction", "Severity", "Criticality", "Status", "Onset"))
    ctx.each(
        "AllergyIntolerance",
        lambda r: None if is_error(r) else _one(ctx, sec, table, r),
        undo=(sec, table.pending),
    )
    finish(body, sec, table, SPEC)


#: the fixed opening of the entries (Allergy Concern Act 2.16.840.1.113883.10.20.22.4.30:2015-08-01)
_ENTRY = xt.Wrap(
    ("entry", {"typeCode": "DRIV"}),
    ("act", {"classCode": "ACT", "moodCode": "EVN"}),
    first=dt.template_xml("2.16.840.1.113883.10.20.22.4.30", "2015-08-01"),
)


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, res: Resource) -> bool:
    key = ctx.index.key(res)
    status = clinical_status(res)
    onset, _ = dt.period_of(res, "onset")
    reactions = [r for r in dt.lst(res.get("reaction")) if isinstance(r, dict)]
    manifest_texts = []
    severities = []
    for r in reactions:
        for m in dt.lst(r.get("manifestation")):
            manifest_texts.append(dt.cc_text(m))
        if isinstance(r.get("severity"), str):
            severities.append(r["severity"])
    crit = dt.str_or(res.get("criticality"), "")
    n = table.rows + 1
    react_ids = [f"{table.prefix}{n}r{i + 1}" for i in range(len(reactions))]
    rid = table.row(
        (
            dt.cc_text(res.get("code")) or "Unknown substance",
            "; ".join(t for t in manifest_texts if t),
            ", ".join(severities),
            crit,
            status,
            dt.display_date(onset),
        ),
        extra=(react_ids[0] if react_ids else "",),
    )
    act = _ENTRY.open()  # appended to sec as one string once complete
    dt.stable_id(act, key + "#concern")
    dt.simple_code_leaf(act, "code", "CONC", codes.ACT_CLASS, "Concern", "HL7ActClass")
    active = status == "active"
    dt.leaf(act, "statusCode", {"code": "active" if active else "completed"})
    recorded = res.get("recordedDate") or onset
    # CONF:1198-10085: a completed concern SHALL have a high (UNK when the record has no usable date)
    dt.ivl_ts(
        act,
        "effectiveTime",
        recorded,
        None if active else res.get("lastOccurrence") or recorded,
        high_null=not active,
    )
    er = dt.el(act, "entryRelationship", {"typeCode": "SUBJ"})
    obs = dt.el(er, "observation", {"classCode": "OBS", "moodCode": "EVN"})
    dt.template(obs, "2.16.840.1.113883.10.20.22.4.7", "2014-06-09")
    dt.identifiers(obs, res, key)
    dt.simple_code_leaf(obs, "code", "ASSERTION", codes.ACT_CODE, "Assertion", "ActCode")
    dt.text_ref(obs, rid)
    dt.leaf(obs, "statusCode", {"code": "completed"})
    dt.ivl_ts(obs, "effectiveTime", onset, res.get("lastOccurrence") if status == "resolved" else None)
    cats = dt.lst(res.get("category"))
    cat = cats[0] if isinstance(cats, list) and cats and isinstance(cats[0], str) else None
    typ = dt.str_or_none(res.get("type"))
    code, disp = (
        _TYPE.get((cat, typ))
        or _TYPE.get((cat, None))
        or _TYPE.get((None, typ))
        or ("420134006", "Propensity to adverse reactions")
    )
    dt.leaf(
        obs,
        "value",
        {
            dt.XSI_TYPE: "CD",
            "code": code,
            "displayName": disp,
            "codeSystem": codes.SNOMED,
            "codeSystemName": "SNOMED CT",
        },
    )
    ctx.author(obs, res.get("recordedDate"), res)
    part = dt.el(obs, "participant", {"typeCode": "CSM"})
    pr = dt.el(part, "participantRole", {"classCode": "MANU"})
    pe = dt.el(pr, "playingEntity", {"classCode": "MMAT"})
    dt.cd(pe, "code", res.get("code"), prefer=_SUBSTANCE, ref=rid)
    for i, r in enumerate(reactions):
        _reaction(obs, r, key, i, react_ids[0] if i == 0 else None)
    if crit in _CRIT:
        er = dt.el(obs, "entryRelationship", {"typeCode": "SUBJ", "inversionInd": "true"})
        co = dt.el(er, "observation", {"classCode": "OBS", "moodCode": "EVN"})
        dt.template(co, "2.16.840.1.113883.10.20.22.4.145")
        dt.simple_code_leaf(co, "code", "82606-5", codes.LOINC, "Criticality", "LOINC")
        dt.leaf(co, "statusCode", {"code": "completed"})
        c, d = _CRIT[crit]
        dt.leaf(
            co,
            "value",
            {
                dt.XSI_TYPE: "CD",
                "code": c,
                "displayName": d,
                "codeSystem": "2.16.840.1.113883.5.1063",
                "codeSystemName": "HL7ObservationValue",
            },
        )
    _ENTRY.close_into(sec, act)
    return True


def _reaction(obs: dt.Node, r: Resource, key: str, i: int, ref: str | None) -> None:
    manifests = [m for m in dt.lst(r.get("manifestation")) if isinstance(m, dict)]
    for j, m in enumerate(manifests or [None]):
        er = dt.el(obs, "entryRelationship", {"typeCode": "MFST", "inversionInd": "true"})
        ro = dt.el(er, "observation", {"classCode": "OBS", "moodCode": "EVN"})
        dt.template(ro, "2.16.840.1.113883.10.20.22.4.9", "2014-06-09")
        dt.stable_id(ro, f"{key}#reaction{i}.{j}")
        dt.simple_code_leaf(ro, "code", "ASSERTION", codes.ACT_CODE, "Assertion", "ActCode")
        if ref and j == 0:
            dt.text_ref(ro, ref)
        dt.leaf(ro, "statusCode", {"code": "completed"})
        onset = r.get("onset")
        if dt.ts(onset):
            dt.ivl_ts(ro, "effectiveTime", onset)
        dt.cd(ro, "value", m, prefer=(codes.SNOMED,), xsi_type="CD")
        sev = r.get("severity")
        if sev in _SEVERITY:
            c, d = _SEVERITY[sev]
            er2 = dt.el(ro, "entryRelationship", {"typeCode": "SUBJ", "inversionInd": "true"})
            so = dt.el(er2, "observation", {"classCode": "OBS", "moodCode": "EVN"})
            dt.template(so, "2.16.840.1.113883.10.20.22.4.8", "2014-06-09")
            dt.simple_code_leaf(so, "code", "SEV", codes.ACT_CODE, "Severity Observation", "ActCode")
            dt.leaf(so, "statusCode", {"code": "completed"})
            dt.leaf(
                so,
                "value",
                {
                    dt.XSI_TYPE: "CD",
                    "code": c,
                    "displayName": d,
                    "codeSystem": codes.SNOMED,
                    "codeSystemName": "SNOMED CT",
                },
            )

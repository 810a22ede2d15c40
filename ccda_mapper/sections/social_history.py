"""Social History Section, 2.16.840.1.113883.10.20.22.2.17:2015-08-01 (required by CCD R2.1, CONF:1198-30688).

Smoking status (LOINC 72166-2) → Smoking Status - Meaningful Use (4.78); other social-history / SDOH
Observations → Social History Observation (4.38); US Core birth sex → Birth Sex Observation (4.200).
"""

from __future__ import annotations

from .. import codes
from .. import datatypes as dt
from .. import xmltext as xt
from ..context import Ctx
from ..index import Resource
from .base import Spec, empty, entry, finish, start
from .observations import effective, kind, of_kind, value_text, write_value

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.17", "2015-08-01"),),
    code="29762-2",
    display="Social history Narrative",
    title="Social History",
    prefix="social",
    required=True,
)
_BIRTHSEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
_SEX = {"M": "Male", "F": "Female"}


def _birth_sex(ctx: Ctx) -> str | None:
    for ext in dt.lst(ctx.index.patient.get("extension")):
        code = ext.get("valueCode") if isinstance(ext, dict) and ext.get("url") == _BIRTHSEX else None
        if isinstance(code, str):
            return code
    return None


def build(ctx: Ctx, body: dt.Node) -> None:
    obs = of_kind(ctx, "smoking", "social")
    sex = _birth_sex(ctx)
    if not obs and not sex:
        empty(body, SPEC)
        return
    sec, table = start(body, SPEC, ("Social history element", "Value", "Date"))
    ctx.each(obs, lambda o: _one(ctx, sec, table, o), undo=(sec, table.pending))
    if sex:
        _birth_sex_entry(ctx, sec, table, sex)
    finish(body, sec, table, SPEC)


#: the fixed parts of the entries, written once (the entries are built as text: see ``xmltext``)
_ENTRY = xt.Wrap(("entry", {"typeCode": "DRIV"}), ("observation", {"classCode": "OBS", "moodCode": "EVN"}))
_SMOKING_TEMPLATE = dt.template_xml("2.16.840.1.113883.10.20.22.4.78", "2014-06-09")
_SOCIAL_TEMPLATE = dt.template_xml("2.16.840.1.113883.10.20.22.4.38", "2015-08-01")
_COMPLETED = '<statusCode code="completed"/>'


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, o: Resource) -> bool:
    start_, end = effective(o)
    smoking = kind(o) == "smoking"
    if smoking and not dt.ts(start_):
        ctx.index.skip(o, "smoking status without an effective time (CONF:1098-31928)")
        return False
    rid = table.row((dt.cc_text(o.get("code")) or "Social history", value_text(o), dt.display_date(start_)))
    ob = _ENTRY.open()  # appended to sec as one string once complete
    if smoking:
        ob.append(_SMOKING_TEMPLATE)
        dt.identifiers(ob, o, ctx.index.key(o))
        dt.simple_code_leaf(ob, "code", "72166-2", codes.LOINC, "Tobacco smoking status", "LOINC")
        dt.text_ref(ob, rid)
        ob.append(_COMPLETED)
        dt.leaf(ob, "effectiveTime", {"value": dt.ts(start_) or ""})
        # CONF:1098-14817: value CD from Current Smoking Status (SNOMED)
        cc = o.get("valueCodeableConcept")
        if isinstance(cc, dict) and dt.first_code(cc, codes.SNOMED):
            dt.cd(ob, "value", cc, prefer=(codes.SNOMED,), xsi_type="CD")
        else:
            dt.leaf(
                ob,
                "value",
                {
                    dt.XSI_TYPE: "CD",
                    "code": "266927001",
                    "codeSystem": codes.SNOMED,
                    "codeSystemName": "SNOMED CT",
                    "displayName": "Tobacco smoking consumption unknown",
                },
            )
    else:
        ob.append(_SOCIAL_TEMPLATE)
        dt.identifiers(ob, o, ctx.index.key(o))
        c = dt.cd_node(ob, "code", o.get("code"), prefer=(codes.LOINC, codes.SNOMED), ref=rid)
        if c.get("codeSystem") != codes.LOINC and c.find("translation") is None:
            # CONF:1198-32951: no LOINC equivalent is known
            dt.leaf(c, "translation", {"nullFlavor": "UNK"})
        dt.text_ref(ob, rid)
        ob.append(_COMPLETED)
        dt.ivl_ts(ob, "effectiveTime", start_, end)  # CONF:1198-31868: SHALL, low UNK when unknown
        write_value(ob, o)
    ctx.author(ob, o.get("issued"), o)
    _ENTRY.close_into(sec, ob)
    return True


def _birth_sex_entry(ctx: Ctx, sec: dt.Node, table: dt.Table, sex: str) -> None:
    """Birth Sex Observation (2.16.840.1.113883.10.20.22.4.200:2016-06-01, C-CDA R2.1 Companion Guide)."""
    rid = table.row(("Sex assigned at birth", _SEX.get(sex, "Unknown"), ""))
    ob = dt.el(entry(sec), "observation", {"classCode": "OBS", "moodCode": "EVN"})
    dt.template(ob, "2.16.840.1.113883.10.20.22.4.200", "2016-06-01")
    dt.simple_code_leaf(ob, "code", "76689-9", codes.LOINC, "Sex assigned at birth", "LOINC")
    dt.text_ref(ob, rid)
    dt.leaf(ob, "statusCode", {"code": "completed"})
    if sex in _SEX:
        dt.leaf(
            ob,
            "value",
            {
                dt.XSI_TYPE: "CD",
                "code": sex,
                "displayName": _SEX[sex],
                "codeSystem": codes.ADMIN_GENDER,
                "codeSystemName": "AdministrativeGender",
            },
        )
    else:
        dt.leaf(ob, "value", {dt.XSI_TYPE: "CD", "nullFlavor": "UNK"})

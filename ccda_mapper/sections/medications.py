"""Medications Section (entries required), 2.16.840.1.113883.10.20.22.2.1.1:2014-06-09.

MedicationRequest / MedicationStatement (+ Medication, contained or referenced) → Medication Activity (4.16)
with Medication Information (4.23).  Requests still in force are intents (moodCode INT), finished ones and
statements are events (EVN) — C-CDA R2.1 CONF:1098-7497 allows both.
"""

from __future__ import annotations

from typing import Any

from .. import codes
from .. import datatypes as dt
from .. import xmltext as xt
from ..context import Ctx
from ..index import Resource
from .base import Spec, empty, finish, is_error, start

SPEC = Spec(
    templates=(("2.16.840.1.113883.10.20.22.2.1.1", "2014-06-09"),),
    code="10160-0",
    display="History of Medication use Narrative",
    title="Medications",
    prefix="med",
    required=True,
)
_STATUS = {
    "active": "active",
    "completed": "completed",
    "stopped": "aborted",
    "cancelled": "cancelled",
    "on-hold": "suspended",
    "draft": "active",
    "intended": "active",
    "not-taken": "cancelled",
    "unknown": "completed",
}
_UNITS_OF_TIME = {"s": "s", "min": "min", "h": "h", "d": "d", "wk": "wk", "mo": "mo", "a": "a"}
_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "wk": 604800, "mo": 2629800, "a": 31557600}
DRUG_CODES = (codes.RXNORM, codes.NDC, codes.SNOMED)


def medication_concept(ctx: Ctx, res: Resource) -> Any:
    """The medication CodeableConcept of a request/statement/immunization (resolving medicationReference)."""
    cc = res.get("medicationCodeableConcept")
    if isinstance(cc, dict):
        return cc
    ref = res.get("medicationReference")
    if isinstance(ref, dict):
        med = ctx.index.resolve(ref, res)
        if med is not None and isinstance(med.get("code"), dict):
            return med["code"]
        if isinstance(ref.get("display"), str):
            return {"text": ref["display"]}
    return None


def product(parent: dt.Parent, cc: Any, ref: str, *, immunization: bool = False, lot: str = "") -> None:
    """consumable/manufacturedProduct: Medication Information (4.23) or Immunization Medication (4.54, with
    the vaccine's lot number), written as text."""
    wrap = _PRODUCT_IMMUNIZATION if immunization else _PRODUCT_MEDICATION
    manufactured = wrap.open()
    material = _MATERIAL.open()
    dt.cd(material, "code", cc, prefer=_VACCINE_CODES if immunization else DRUG_CODES, ref=ref)
    if lot:
        dt.leaf(material, "lotNumberText", text=lot)
    _MATERIAL.close_into(manufactured, material)
    wrap.close_into(parent, manufactured)


_VACCINE_CODES = (codes.CVX, codes.NDC, codes.SNOMED)
_MATERIAL = xt.Wrap(("manufacturedMaterial", None))
_PRODUCT_IMMUNIZATION, _PRODUCT_MEDICATION = (
    xt.Wrap(
        ("consumable", None),
        ("manufacturedProduct", {"classCode": "MANU"}),
        first=dt.template_xml(root, "2014-06-09"),
    )
    for root in ("2.16.840.1.113883.10.20.22.4.54", "2.16.840.1.113883.10.20.22.4.23")
)


def build(ctx: Ctx, body: dt.Node) -> None:
    items = [
        r for t in ("MedicationRequest", "MedicationStatement") for r in ctx.index.of(t) if not is_error(r)
    ]
    if not items:
        empty(body, SPEC)
        return
    sec, table = start(body, SPEC, ("Medication", "Dose / instructions", "Status", "Start", "End"))
    for t in ("MedicationRequest", "MedicationStatement"):
        ctx.each(t, lambda r: None if is_error(r) else _one(ctx, sec, table, r), undo=(sec, table.pending))
    finish(body, sec, table, SPEC)


def _dosage(res: Resource) -> dict[str, Any]:
    d = res.get("dosageInstruction") if res.get("resourceType") == "MedicationRequest" else res.get("dosage")
    if isinstance(d, list) and d and isinstance(d[0], dict):
        return d[0]
    return {}


#: the fixed opening of the entries (Medication Activity 2.16.840.1.113883.10.20.22.4.16:2014-06-09)
_ENTRY_EVN, _ENTRY_INT = (
    xt.Wrap(
        ("entry", {"typeCode": "DRIV"}),
        ("substanceAdministration", {"classCode": "SBADM", "moodCode": mood}),
        first=dt.template_xml("2.16.840.1.113883.10.20.22.4.16", "2014-06-09"),
    )
    for mood in ("EVN", "INT")
)


def _one(ctx: Ctx, sec: dt.Node, table: dt.Table, res: Resource) -> bool:
    cc = medication_concept(ctx, res)
    if cc is None:
        ctx.index.skip(res, "no medication code or resolvable Medication")
        return False
    dosage = _dosage(res)
    status = dt.str_or(res.get("status"), "unknown")
    if res.get("resourceType") == "MedicationRequest":
        start_, end = dt.period_of(dt.obj(res.get("dispenseRequest")), "validity")
        timing = dt.obj(dosage.get("timing"))
        bounds = (
            dt.obj(timing.get("repeat")).get("boundsPeriod")
            if isinstance(timing.get("repeat"), dict)
            else None
        )
        if isinstance(bounds, dict):
            start_, end = bounds.get("start") or start_, bounds.get("end") or end
        start_ = start_ or res.get("authoredOn")
        mood = "EVN" if status in ("completed", "stopped", "cancelled") else "INT"
    else:
        start_, end = dt.period_of(res, "effective")
        start_ = start_ or res.get("dateAsserted")
        mood = "EVN"
    instr = dt.clean(dosage.get("text")) or dt.clean(dosage.get("patientInstruction"))
    rid = table.row(
        (dt.cc_text(cc) or "Unknown medication", instr, status, dt.display_date(start_), dt.display_date(end))
    )
    wrap = _ENTRY_EVN if mood == "EVN" else _ENTRY_INT
    sa = wrap.open()  # appended to sec once complete
    dt.identifiers(sa, res, ctx.index.key(res))
    dt.text_ref(sa, rid)
    dt.leaf(sa, "statusCode", {"code": _STATUS.get(status, "completed")})
    # CONF:1098-7508: effectiveTime IVL_TS with low (a start) — unknown start is nullFlavor UNK
    dt.ivl_ts(sa, "effectiveTime", start_, end, xsi_type="IVL_TS")
    _frequency(sa, dosage)
    route = dosage.get("route")
    if isinstance(route, dict) and dt.first_code(route, "2.16.840.1.113883.3.26.1.1"):
        dt.cd(sa, "routeCode", route, prefer=("2.16.840.1.113883.3.26.1.1",), text=False)
    dose = None
    for dr in dt.lst(dosage.get("doseAndRate")):
        if isinstance(dr, dict) and isinstance(dr.get("doseQuantity"), dict):
            dose = dr["doseQuantity"]
            break
    if dose is not None and dt.num(dose.get("value")) is not None:
        dt.leaf(
            sa,
            "doseQuantity",
            {"value": dt.num(dose.get("value")) or "1", "unit": dt.clean(dt.ucum_unit(dose))},
        )
    else:  # CONF:1098-7516: doseQuantity SHALL be present; the dose is not in the record
        dt.leaf(sa, "doseQuantity", {"nullFlavor": "UNK"})
    product(sa, cc, rid)
    ctx.author(sa, res.get("authoredOn"), res)
    wrap.close_into(sec, sa)
    return True


def _frequency(sa: dt.Parent, dosage: dict[str, Any]) -> None:
    """Timing.repeat (frequency per period) → PIVL_TS with institutionSpecified (CONF:1098-7513)."""
    timing = dosage.get("timing")
    rep = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(rep, dict):
        return
    period = dt.num(rep.get("period"))
    unit = _UNITS_OF_TIME.get(dt.str_or_none(rep.get("periodUnit")) or "")
    frequency = rep.get("frequency")
    freq = frequency if isinstance(frequency, int) else 1
    if period is None or unit is None or freq < 1:
        return
    seconds = float(period) * _SECONDS[unit] / freq
    for u in ("a", "mo", "wk", "d", "h", "min", "s"):  # the largest unit giving a whole number: "12 h"
        value = seconds / _SECONDS[u]
        if value >= 1 and abs(value - round(value)) < 1e-9:
            text, unit = str(round(value)), u
            break
    else:
        text = f"{seconds / _SECONDS[unit]:g}"
    eff = dt.el(
        sa, "effectiveTime", {dt.XSI_TYPE: "PIVL_TS", "institutionSpecified": "true", "operator": "A"}
    )
    dt.leaf(eff, "period", {"value": text, "unit": unit})

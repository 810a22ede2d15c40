"""What the observation-based sections share: which section an Observation belongs to, and its value.

Routing (C-CDA on FHIR IG mapping): US Core category ``vital-signs`` → Vital Signs; smoking status (LOINC
72166-2) and ``social-history``/``sdoh`` → Social History; ``functional-status``/``disability-status`` →
Functional Status; ``cognitive-status`` → Mental Status; everything else (laboratory, imaging, exam, survey
instruments such as PHQ-9, uncategorised) → Results, where the instrument keeps its own LOINC code.
"""

from __future__ import annotations

from typing import Any

from .. import codes
from .. import datatypes as dt
from ..context import Ctx
from ..index import Resource

SMOKING = "72166-2"
BP_PANELS = frozenset(("85354-9", "55284-4", "35094-2"))
VITAL_LOINC = frozenset(
    """85354-9 8480-6 8462-4 8867-4 9279-1 2708-6 59408-5 8310-5 8302-2 8306-3 29463-7 3141-9 39156-5 8287-5
    9843-4 77606-2 59576-9 8289-1 3150-0 55284-4 35094-2 3140-1 8478-0""".split()
)
_RESULT_STATUS = {
    "final": "completed",
    "amended": "completed",
    "corrected": "completed",
    "appended": "completed",
    "preliminary": "active",
    "registered": "active",
    "partial": "active",
    "cancelled": "cancelled",
    "unknown": "completed",
}


def categories(res: Resource) -> set[str]:
    out: set[str] = set()
    for cat in dt.lst(res.get("category")):
        if isinstance(cat, dict):
            for c in dt.lst(cat.get("coding")):
                if isinstance(c, dict) and isinstance(c.get("code"), str):
                    out.add(c["code"])
    return out


#: id(resource) -> (resource, kind). Routing is asked for the same Observation by several sections; the entry
#: keeps the resource so a recycled id() can never match. Emptied after each build (document.build).
_KIND_CACHE: dict[int, tuple[Resource, str]] = {}


#: id(index) -> (index, [(usable Observation, kind)] in input order): every observation section asks.
_ROUTED: dict[int, tuple[Any, list[tuple[Resource, str]]]] = {}


def clear_cache() -> None:
    _KIND_CACHE.clear()
    _ROUTED.clear()


def of_kind(ctx: Ctx, *kinds: str) -> list[Resource]:
    """The usable Observations routed to one of ``kinds``, in input order (routed once per build)."""
    hit = _ROUTED.get(id(ctx.index))
    if hit is None or hit[0] is not ctx.index:
        hit = (ctx.index, [(o, kind(o)) for o in ctx.index.of("Observation") if usable(o)])
        _ROUTED.clear()
        _ROUTED[id(ctx.index)] = hit
    return [o for o, k in hit[1] if k in kinds]


def kind(res: Resource) -> str:
    """vital | smoking | social | functional | mental | result (memoised per resource for one build)."""
    hit = _KIND_CACHE.get(id(res))
    if hit is not None and hit[0] is res:
        return hit[1]
    k = _kind(res)
    if len(_KIND_CACHE) > 50000:
        _KIND_CACHE.clear()
    _KIND_CACHE[id(res)] = (res, k)
    return k


def _kind(res: Resource) -> str:
    loinc = dt.first_code(res.get("code"), codes.LOINC)
    if loinc == SMOKING:
        return "smoking"
    cats = categories(res)
    if "vital-signs" in cats or (not cats and loinc in VITAL_LOINC):
        return "vital"
    if cats & {"social-history", "sdoh"}:
        return "social"
    if cats & {"functional-status", "disability-status"}:
        return "functional"
    if "cognitive-status" in cats:
        return "mental"
    return "result"


def result_status(res: Resource) -> str:
    s = res.get("status")
    return _RESULT_STATUS.get(s, "completed") if isinstance(s, str) else "completed"


def effective(res: Resource) -> tuple[Any, Any]:
    start, end = dt.period_of(res, "effective")
    if start is None and end is None:
        start = res.get("issued")
    return start, end


def value_text(res: Resource) -> str:
    """The value as people read it (quantity with unit, concept text, string...)."""
    if "valueQuantity" in res:
        return dt.quantity_text(res["valueQuantity"])
    if "valueCodeableConcept" in res:
        return dt.cc_text(res["valueCodeableConcept"])
    for k in ("valueString", "valueDateTime", "valueTime", "valueInteger"):
        if k in res:
            return dt.clean(str(res[k]))
    if "valueBoolean" in res:
        return "yes" if res["valueBoolean"] is True else "no"
    if isinstance(res.get("valueRange"), dict):
        r = res["valueRange"]
        return f"{dt.quantity_text(r.get('low'))} - {dt.quantity_text(r.get('high'))}"
    if isinstance(res.get("valueRatio"), dict):
        r = res["valueRatio"]
        return f"{dt.quantity_text(r.get('numerator'))} / {dt.quantity_text(r.get('denominator'))}"
    if isinstance(res.get("dataAbsentReason"), dict):
        return dt.cc_text(res["dataAbsentReason"]) or "no value"
    return ""


def write_value(obs: dt.Parent, res: Resource, *, ref: str | None = None, null: str = "NI") -> None:
    """The CDA ``value`` (ANY with xsi:type) of an Observation-like dict; nullFlavor when there is none."""
    if "valueQuantity" in res and dt.pq(obs, "value", res["valueQuantity"]) is not None:
        return
    if isinstance(res.get("valueCodeableConcept"), dict):
        dt.cd(obs, "value", res["valueCodeableConcept"], prefer=(codes.SNOMED, codes.LOINC), xsi_type="CD")
        return
    if isinstance(res.get("valueString"), str) and dt.clean(res["valueString"]):
        dt.leaf(obs, "value", {dt.XSI_TYPE: "ST"}, text=dt.clean(res["valueString"]))
        return
    if isinstance(res.get("valueBoolean"), bool):
        dt.leaf(obs, "value", {dt.XSI_TYPE: "BL", "value": "true" if res["valueBoolean"] else "false"})
        return
    if isinstance(res.get("valueInteger"), int) and not isinstance(res.get("valueInteger"), bool):
        dt.leaf(obs, "value", {dt.XSI_TYPE: "INT", "value": str(res["valueInteger"])})
        return
    if isinstance(res.get("valueDateTime"), str) and dt.ts(res["valueDateTime"]):
        dt.leaf(obs, "value", {dt.XSI_TYPE: "TS", "value": dt.ts(res["valueDateTime"]) or ""})
        return
    r = res.get("valueRange")
    if isinstance(r, dict):
        v = dt.el(obs, "value", {dt.XSI_TYPE: "IVL_PQ"})
        if dt.pq(v, "low", r.get("low"), xsi=False) is None:
            dt.leaf(v, "low", {"nullFlavor": "NI"})
        if dt.pq(v, "high", r.get("high"), xsi=False) is None:
            dt.leaf(v, "high", {"nullFlavor": "NI"})
        return
    text = value_text(res)
    if text:
        dt.leaf(obs, "value", {dt.XSI_TYPE: "ST"}, text=text)
        return
    dt.leaf(obs, "value", {dt.XSI_TYPE: "CD", "nullFlavor": null})


def interpretation(obs: dt.Parent, res: Resource) -> None:
    for cc in dt.lst(res.get("interpretation")):
        code = dt.first_code(cc, codes.INTERPRETATION) or dt.first_code(cc, "2.16.840.1.113883.12.78")
        if code:
            dt.leaf(
                obs,
                "interpretationCode",
                {
                    "code": code,
                    "codeSystem": codes.INTERPRETATION,
                    "codeSystemName": "ObservationInterpretation",
                },
            )


def reference_range(obs: dt.Parent, res: Resource) -> str:
    """referenceRange (low/high quantities, else text); returns the narrative form."""
    for rr in dt.lst(res.get("referenceRange")):
        if not isinstance(rr, dict):
            continue
        lo, hi = rr.get("low"), rr.get("high")
        text = dt.clean(rr.get("text"))
        if not (isinstance(lo, dict) or isinstance(hi, dict) or text):
            continue
        orr = dt.el(dt.el(obs, "referenceRange"), "observationRange")
        shown = text or f"{dt.quantity_text(lo)} - {dt.quantity_text(hi)}".strip(" -")
        if shown:
            dt.leaf(orr, "text", text=shown)
        if not (isinstance(lo, dict) or isinstance(hi, dict)):
            dt.leaf(orr, "value", {dt.XSI_TYPE: "ST"}, text=shown)  # CONF:1198-32175: value SHALL be present
        else:
            v = dt.el(orr, "value", {dt.XSI_TYPE: "IVL_PQ"})
            if dt.pq(v, "low", lo, xsi=False) is None:
                dt.leaf(v, "low", {"nullFlavor": "NI"})
            if dt.pq(v, "high", hi, xsi=False) is None:
                dt.leaf(v, "high", {"nullFlavor": "NI"})
        return shown
    return ""


def members(ctx: Ctx, res: Resource) -> list[Resource]:
    """Observations a panel (hasMember) or report (result) points to, resolved inside the input."""
    out = []
    for ref in dt.lst(res.get("hasMember")) + dt.lst(res.get("result")):
        target = ctx.index.resolve(ref, res)
        if target is not None and target.get("resourceType") == "Observation" and target is not res:
            out.append(target)
    return out


def usable(res: Resource) -> bool:
    s = res.get("status")
    return s not in ("entered-in-error", "cancelled")

"""Section scaffolding: templateIds, code, title, narrative table, and the "No information" empty form."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import codes
from .. import datatypes as dt
from .. import xmltext as xt

_Element = dt.Node


@dataclass(frozen=True)
class Spec:
    """What identifies a section: templates (root, extension), LOINC code, title, and whether CCD needs it."""

    templates: tuple[tuple[str, str | None], ...]
    code: str
    display: str
    title: str
    prefix: str
    required: bool = False


def _head(body: dt.Parent, spec: Spec, *, null: bool) -> _Element:
    comp = dt.el(body, "component")
    sec = dt.el(comp, "section", {"nullFlavor": "NI"} if null else None)
    for root, ext in spec.templates:
        dt.template(sec, root, ext)
    dt.simple_code_leaf(sec, "code", spec.code, codes.LOINC, spec.display, "LOINC")
    dt.leaf(sec, "title", text=spec.title)
    return sec


def empty(body: _Element, spec: Spec) -> None:
    """A required section without data: ``nullFlavor="NI"`` and a "No information" narrative (C-CDA R2.1 Vol.
    1 §1.8.1 "Sections with no information"); constant per section, so written once and reused."""
    body.append(_empty_xml(spec))


@functools.cache
def _empty_xml(spec: Spec) -> str:
    parts: dt.Parent = []
    sec = _head(parts, spec, null=True)
    dt.leaf(sec, "text", text="No information")
    return xt.join(parts)


def start(body: _Element, spec: Spec, headers: Sequence[str]) -> tuple[_Element, dt.Table]:
    sec = _head(body, spec, null=False)
    return sec, dt.Table(sec, spec.prefix, headers)


def entry(sec: _Element, type_code: str | None = "DRIV") -> _Element:
    return dt.el(sec, "entry", {"typeCode": type_code} if type_code else None)


def status_text(value: object) -> str:
    return value if isinstance(value, str) else ""


def finish(body: _Element, sec: _Element, table: dt.Table, spec: Spec) -> None:
    """Complete the narrative; drop a section whose every resource was skipped (a required one becomes the
    empty NI form)."""
    if table.rows:
        table.flush()
        return
    body.remove(sec.getparent())
    if spec.required:
        empty(body, spec)


def clinical_status(res: dict[str, Any], default: str = "active") -> str:
    """FHIR clinicalStatus code (first coding), or ``default``."""
    cs = res.get("clinicalStatus")
    if isinstance(cs, str):  # STU3-style plain code, seen in dirty data
        return cs
    if isinstance(cs, dict):
        for c in dt.lst(cs.get("coding")):
            code = c.get("code") if isinstance(c, dict) else None
            if isinstance(code, str):
                return code
    return default


def is_error(res: dict[str, Any]) -> bool:
    """entered-in-error resources are not part of the record (FHIR R4 status semantics)."""
    if res.get("status") == "entered-in-error":
        return True
    vs = res.get("verificationStatus")
    if isinstance(vs, dict):
        for c in dt.lst(vs.get("coding")):
            if isinstance(c, dict) and c.get("code") in ("entered-in-error", "refuted"):
                return True
    return False

"""Reason for Referral Section, 1.3.6.1.4.1.19376.1.5.3.1.3.1:2014-06-09 (narrative), when a referral exists.

ServiceRequest with category "Patient referral" (SNOMED 3457005, US Core) → one narrative row each.
"""

from __future__ import annotations

from .. import datatypes as dt
from ..context import Ctx
from ..index import Resource
from .base import Spec, finish, is_error, start
from .plan_of_treatment import is_referral

SPEC = Spec(
    templates=(("1.3.6.1.4.1.19376.1.5.3.1.3.1", "2014-06-09"),),
    code="42349-1",
    display="Reason for referral (narrative)",
    title="Reason for Referral",
    prefix="referral",
)


def build(ctx: Ctx, body: dt.Node) -> None:
    items = [r for r in ctx.index.of("ServiceRequest") if not is_error(r) and is_referral(r)]
    if not items:
        return
    sec, table = start(body, SPEC, ("Referral", "Reason", "Date"))
    for r in items:
        _one(table, r)
    finish(body, sec, table, SPEC)


def _one(table: dt.Table, r: Resource) -> None:
    reasons = "; ".join(dt.cc_text(c) for c in dt.lst(r.get("reasonCode")) if isinstance(c, dict))
    table.row((dt.cc_text(r.get("code")) or "Referral", reasons, dt.display_date(r.get("authoredOn"))))

"""Build the whole CCD: index the input, write the header, then one section module after the other.

Output is deterministic for the same input: every id is a UUID derived from resource keys, the document time
is ``now=`` or the newest date in the record (never the wall clock), and sections keep the input order.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from . import datatypes as dt
from .context import _DATA_ERRORS, Ctx
from .header import header
from .index import Index, Resource, build_index
from .sections import ORDER, observations
from .sections.base import empty

_XML_DECL = b"<?xml version='1.0' encoding='UTF-8'?>\n"
_DATE_FIELDS = frozenset(
    (
        "effectiveDateTime",
        "issued",
        "recordedDate",
        "authoredOn",
        "occurrenceDateTime",
        "performedDateTime",
        "onsetDateTime",
        "date",
        "created",
        "dateAsserted",
    )
)
_PERIOD_FIELDS = frozenset(("effectivePeriod", "performedPeriod", "period", "onsetPeriod"))
_TIME_FIELDS = _DATE_FIELDS | _PERIOD_FIELDS


@dataclass
class BuildResult:
    """The CCD, what was left out and why, and the claims (CARIN Blue Button) Bundle when there are claims."""

    xml: bytes
    skipped: list[str] = field(default_factory=list)
    claims_bundle: dict[str, Any] | None = None


def _newest_date(idx: Index) -> str | None:
    """The newest usable date of the record (ISO strings compare in time order within one zone)."""
    seen: list[str] = []
    for items in idx.by_type.values():
        for r in items:
            meta = r.get("meta")
            if isinstance(meta, dict) and isinstance(meta.get("lastUpdated"), str):
                seen.append(meta["lastUpdated"])
            # only the fields the resource has (a set intersection is cheaper than 14 look-ups)
            for f in _TIME_FIELDS.intersection(r):
                v = r[f]
                if f in _PERIOD_FIELDS:
                    if isinstance(v, dict):
                        x = v.get("end") or v.get("start")
                        if isinstance(x, str):
                            seen.append(x)
                elif isinstance(v, str):
                    seen.append(v)
    if seen:
        newest = max(seen)
        if dt.ts(newest, min_day=True):  # the usual case: no need to sort them all
            return newest
    for v in sorted(seen, reverse=True):
        if dt.ts(v, min_day=True):
            return v
    return None


def _now_ts(now: Any, idx: Index) -> str:
    if isinstance(now, _dt.datetime):
        aware = now if now.tzinfo is not None else now.replace(tzinfo=_dt.UTC)
        return aware.strftime("%Y%m%d%H%M%S%z")
    given = dt.ts(now, min_day=True) if isinstance(now, str) else None
    if given:
        return given
    newest = _newest_date(idx)
    t = dt.ts(newest, min_day=True) if newest else None
    return t or "19700101"


def _doc_id(idx: Index, now: str, *who: Any) -> str:
    """Same record, time, author and custodian → same document id; any change → a new one."""
    parts = [now, json.dumps(who, sort_keys=True, default=str)]
    for rtype in sorted(idx.by_type):
        for r in idx.by_type[rtype]:
            parts.append(idx.key(r))
            meta = r.get("meta")
            if isinstance(meta, dict):
                parts.append(str(meta.get("versionId", "")) + str(meta.get("lastUpdated", "")))
    # one update over the concatenation: the same digest as one update per part, at a fraction of the calls
    h = hashlib.sha256("".join(parts).encode())
    return dt.uid("doc:" + h.hexdigest())


def _claims(idx: Index) -> dict[str, Any] | None:
    """ExplanationOfBenefit resources as a FHIR collection Bundle (CARIN Blue Button: EOBs with the Patient,
    Coverage, Organization and Practitioner resources they reference)."""
    eobs = idx.of("ExplanationOfBenefit")
    if not eobs:
        return None
    out: list[Resource] = [idx.patient]
    seen = {id(idx.patient)}
    for eob in eobs:
        out.append(eob)
        seen.add(id(eob))
    for eob in eobs:
        refs: list[Any] = [eob.get("insurer"), eob.get("provider")]
        for ins in dt.lst(eob.get("insurance")):
            if isinstance(ins, dict):
                refs.append(ins.get("coverage"))
        for care in dt.lst(eob.get("careTeam")):
            if isinstance(care, dict):
                refs.append(care.get("provider"))
        for ref in refs:
            target = idx.resolve(ref, eob) if ref is not None else None
            if target is not None and id(target) not in seen:
                seen.add(id(target))
                out.append(target)
    entries = []
    for r in out:
        key = idx.key(r)
        full = f"urn:uuid:{dt.uid(key)}" if not r.get("id") else f"{r['resourceType']}/{r['id']}"
        entries.append({"fullUrl": full, "resource": r})
    return {"resourceType": "Bundle", "type": "collection", "total": len(eobs), "entry": entries}


def build(
    resources_or_bundle: Any, *, author: Any = None, custodian: Any = None, now: Any = None
) -> BuildResult:
    """FHIR (Bundle / resource list / NDJSON / JSON text) → :class:`BuildResult`.

    Raises :class:`ccda_mapper.errors.NotFhir` / :class:`~ccda_mapper.errors.NoPatient` on unusable input; a
    bad single resource is only skipped (listed in ``skipped``).
    """
    return _build(resources_or_bundle, author, custodian, now, claims=True)


def _build(resources_or_bundle: Any, author: Any, custodian: Any, now: Any, *, claims: bool) -> BuildResult:
    idx = build_index(resources_or_bundle)
    ctx = Ctx(index=idx, now=_now_ts(now, idx))
    root = dt.Node("ClinicalDocument")
    root.start += dt.ROOT_NS
    header(root, ctx, _doc_id(idx, ctx.now, author, custodian), author=author, custodian=custodian)
    body = dt.el(dt.el(root, "component"), "structuredBody")
    try:
        for section in ORDER:
            mark = len(body)
            try:
                section.build(ctx, body)
            except _DATA_ERRORS as exc:  # a defect the per-resource guards missed: lose a section, not all
                del body[mark:]
                idx.skipped.append(f"section {section.SPEC.title}: not mapped ({type(exc).__name__})")
                if section.SPEC.required:
                    empty(body, section.SPEC)
    finally:
        observations.clear_cache()
        dt.clear_build_caches()
    # every text and attribute value was escaped (and XML-illegal characters dropped) as it was written
    xml = _XML_DECL + root.serialize().encode("utf-8")
    return BuildResult(xml=xml, skipped=list(idx.skipped), claims_bundle=_claims(idx) if claims else None)


def build_ccd(resources_or_bundle: Any, *, author: Any = None, custodian: Any = None) -> bytes:
    """The fixed contract: FHIR resources in, C-CDA R2.1 CCD bytes (UTF-8 XML) out."""
    # the claims Bundle is not part of this contract: not assembled
    return _build(resources_or_bundle, author, custodian, None, claims=False).xml


def clinical_hash(xml: bytes | str) -> str:
    """SHA-256 over what a recipient reads (canonical XML of the patient — ``recordTarget`` — and of the
    ``structuredBody``), so a document whose id or time changed but whose content did not hashes the same: the
    "send on update" trigger skips it. The patient's demographics count: a new address or phone is an update
    an *always* recipient must get."""
    data = xml.encode() if isinstance(xml, str) else xml
    # lxml is imported on first use: building a document does not need it, and ``bbdirect ccda`` starts
    # faster without it
    from lxml import etree

    from .safexml import has_doctype, safe_parser

    root = etree.fromstring(data, safe_parser())
    if has_doctype(root):
        # our documents never carry a DTD; one that does may smuggle entities, so it is refused, not hashed
        raise ValueError("C-CDA with a DOCTYPE is not accepted")
    digest = hashlib.sha256()
    for path in ("recordTarget", "component/structuredBody"):
        part = root.find("/".join(f"{{{dt.V3}}}{step}" for step in path.split("/")))
        digest.update(b"" if part is None else etree.tostring(part, method="c14n"))
    return digest.hexdigest()

"""Index of the FHIR resources of one patient, and reference resolution.

Input comes in many shapes (Bundle of any type, NDJSON, a list of resources, nested Bundles) and references in
four styles (FHIR R4 §3.1.2 "Resolving references in Bundles"): ``urn:uuid:`` resolved through
``entry.fullUrl`` (the uuid need not equal ``resource.id``), absolute URLs, relative ``Type/id`` (resolved
against the fullUrl base first, then by type and id), conditional ``Type?identifier=system|value`` and local
``#contained``.  Nothing is parsed into models: resources stay dicts, and whatever is not a usable dict is
skipped with a reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import NoPatient, NotFhir

Resource = dict[str, Any]

_TYPE_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ABS_RE = re.compile(
    r"^(?P<base>https?://.+?/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(/_history/.*)?$"
)


def loads(data: bytes | str) -> Any:
    """Parse JSON or NDJSON text; raise :class:`NotFhir` with a one-line reason otherwise."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise NotFhir("input is not UTF-8 text") from exc
    text = data.strip()
    if not text:
        raise NotFhir("input is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise NotFhir(f"input is neither JSON nor NDJSON (line {n}: {exc.msg})") from exc
    return items


@dataclass
class Index:
    """All resources by type and by every key a reference may use."""

    patient: Resource
    by_type: dict[str, list[Resource]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    _by_url: dict[str, Resource] = field(default_factory=dict)
    _by_tid: dict[tuple[str, str], Resource] = field(default_factory=dict)
    #: identifier look-up, built per resource type on first use (most records never need it)
    _by_ident: dict[str, dict[tuple[str, str], Resource]] = field(default_factory=dict)
    _indexed: dict[str, list[Resource]] = field(default_factory=dict)
    _keys: dict[int, str] = field(default_factory=dict)
    _misses: dict[str, Resource | None] = field(default_factory=dict)
    _patient_keys: set[str] = field(default_factory=set)

    def of(self, rtype: str) -> list[Resource]:
        return self.by_type.get(rtype, [])

    def key(self, res: Resource) -> str:
        """Stable key of a resource (``Type/id``, else its fullUrl): the seed of every id derived from it."""
        return self._keys.get(id(res)) or f"{res.get('resourceType')}/{res.get('id')}"

    def skip(self, res: Resource | None, reason: str) -> None:
        what = self.key(res) if isinstance(res, dict) else "input"
        self.skipped.append(f"{what}: {reason}")

    def resolve(self, ref: Any, container: Resource | None = None) -> Resource | None:
        """Resolve a FHIR Reference (dict) or reference string; None when it does not resolve."""
        if isinstance(ref, dict):
            target = ref.get("reference")
            if not isinstance(target, str) or not target:
                ident = ref.get("identifier")
                rtype = ref.get("type")
                if isinstance(ident, dict) and isinstance(rtype, str):
                    return self._ident(rtype, str(ident.get("system", "")), str(ident.get("value", "")))
                return None
        elif isinstance(ref, str):
            target = ref
        else:
            return None
        if target.startswith("#"):
            if container is None:
                return None
            contained = container.get("contained")
            for c in contained if isinstance(contained, list) else ():
                if isinstance(c, dict) and c.get("id") == target[1:]:
                    return c
            return None
        hit = self._by_url.get(target)
        if hit is not None:
            return hit
        if target in self._misses:  # the same dangling / conditional reference is met again and again
            return self._misses[target]
        if "?" in target:
            found = self._conditional(target)
        else:
            m = _ABS_RE.match(target)
            found = self._by_tid.get((m["type"], m["id"])) if m else None
        self._misses[target] = found
        return found

    def _conditional(self, target: str) -> Resource | None:
        rtype, _, query = target.partition("?")
        for part in query.split("&"):
            name, _, value = part.partition("=")
            if name == "identifier" and value:
                system, bar, val = value.partition("|")
                if not bar:
                    system, val = "", system
                hit = self._ident(rtype, system, val)
                if hit is not None:
                    return hit
        return None

    def _ident(self, rtype: str, system: str, value: str) -> Resource | None:
        """The first indexed resource of ``rtype`` with this identifier (input order, as a reference by
        identifier means the first match)."""
        table = self._by_ident.get(rtype)
        if table is None:
            table = {}
            for res in self._indexed.get(rtype, ()):
                for key in _identifiers(res):
                    table.setdefault(key, res)
            self._by_ident[rtype] = table
        return table.get((system, value))

    def is_other_patient(self, res: Resource) -> bool:
        """True when the resource names a subject/patient that resolves to a Patient other than ours."""
        for fld in ("subject", "patient", "beneficiary"):
            ref = res.get(fld)
            if isinstance(ref, dict):
                target = self.resolve(ref)
                if (
                    target is not None
                    and target.get("resourceType") == "Patient"
                    and target is not self.patient
                ):
                    return True
        return False


def _walk(obj: Any, full_url: str | None, out: list[tuple[Resource, str | None]], skipped: list[str]) -> None:
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            if isinstance(item, dict):
                _walk(item, None, out, skipped)
            else:
                skipped.append(f"item {i}: not a JSON object")
        return
    if not isinstance(obj, dict):
        return
    rtype = obj.get("resourceType")
    if rtype == "Bundle":
        entries = obj.get("entry") or []
        if not isinstance(entries, list):
            skipped.append("Bundle.entry: not a list")
            return
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                skipped.append(f"Bundle.entry[{i}]: not an object")
                continue
            res = entry.get("resource")
            url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
            if not isinstance(res, dict):
                skipped.append(f"Bundle.entry[{i}]: no resource")
                continue
            kind = res.get("resourceType")
            if kind != "Bundle" and _valid_type(kind):  # the usual entry, without a recursive call
                out.append((res, url))
            else:
                _walk(res, url, out, skipped)
        return
    if not _valid_type(rtype):
        skipped.append(f"{full_url or 'item'}: no valid resourceType")
        return
    out.append((obj, full_url))


_VALID_TYPES: set[str] = set()


def _valid_type(rtype: Any) -> bool:
    """A resourceType that looks like one (memoised: a record has a few dozen types)."""
    if rtype.__class__ is not str:
        return False
    if rtype in _VALID_TYPES:
        return True
    if not _TYPE_RE.match(rtype):
        return False
    if len(_VALID_TYPES) < 1000:
        _VALID_TYPES.add(rtype)
    return True


def _identifiers(res: Resource) -> Iterator[tuple[str, str]]:
    idents = res.get("identifier")
    if isinstance(idents, dict):
        idents = [idents]
    if not isinstance(idents, list):
        return
    for ident in idents:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            yield str(ident.get("system") or ""), ident["value"]


def build_index(data: Any) -> Index:
    """Index a Bundle / resource / list / NDJSON text.  Raises :class:`NotFhir` or :class:`NoPatient`."""
    if isinstance(data, bytes | str):
        data = loads(data)
    if isinstance(data, dict):
        if not isinstance(data.get("resourceType"), str):
            raise NotFhir("input is JSON but not a FHIR resource (no resourceType)")
    elif isinstance(data, list | tuple):
        data = list(data)
        if not any(isinstance(x, dict) and isinstance(x.get("resourceType"), str) for x in data):
            raise NotFhir("input is a list without any FHIR resource")
    else:
        raise NotFhir("input is not a FHIR Bundle, resource or list of resources")
    skipped: list[str] = []
    found: list[tuple[Resource, str | None]] = []
    try:
        _walk(data, None, found, skipped)
    except RecursionError as exc:
        raise NotFhir("input nests Bundles too deeply") from exc
    patients = [r for r, _ in found if r.get("resourceType") == "Patient"]
    if not patients:
        raise NoPatient("input holds no Patient resource")
    idx = Index(patient=patients[0], skipped=skipped)
    seen: set[str] = set()
    for n, (res, url) in enumerate(found):
        rtype = res["resourceType"]
        rid = res.get("id")
        rid = rid if isinstance(rid, str) and rid else None
        key = f"{rtype}/{rid}" if rid else (url or f"{rtype}#{n}")
        if key in seen:
            skipped.append(f"{key}: duplicate of an earlier entry")
            continue
        seen.add(key)
        idx._keys[id(res)] = key
        if url:
            idx._by_url.setdefault(url, res)
        if rid:
            idx._by_tid.setdefault((rtype, rid), res)
            idx._by_url.setdefault(f"{rtype}/{rid}", res)
        idx.by_type.setdefault(rtype, []).append(res)
    idx._indexed = dict(idx.by_type)  # before the other-patient filter, which replaces (not edits) the lists
    # with a single Patient in the input a reference can only resolve to ours (or to nothing): no check needed
    for rtype, items in list(idx.by_type.items()) if len(patients) > 1 else ():
        if rtype == "Patient":
            continue
        kept = []
        for res in items:
            if idx.is_other_patient(res):
                idx.skip(res, "belongs to another patient")
            else:
                kept.append(res)
        idx.by_type[rtype] = kept
    if len(patients) > 1:
        skipped.append(f"input: {len(patients) - 1} other Patient resource(s) ignored; CCD is for the first")
    return idx


def iter_codings(cc: Any) -> Iterable[dict[str, Any]]:
    if isinstance(cc, dict):
        coding = cc.get("coding")
        for c in coding if isinstance(coding, list) else ():
            if isinstance(c, dict):
                yield c

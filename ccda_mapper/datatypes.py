"""CDA R2 data types built from FHIR R4 data types (II, CD/CE, TS/IVL_TS, PQ, AD, TEL, PN) and narrative
tables.

Everything is written straight from the FHIR dicts (no model objects on the hot path) with the small
text builder in :mod:`.xmltext`: elements that get children later are :class:`~.xmltext.Node` objects,
finished leaves are escaped strings.  All escaping happens in ``xmltext``; ``clean`` additionally drops
the control characters XML 1.0 forbids from values that are also used as narrative text.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict, Unpack

from . import codes
from . import xmltext as xt
from .index import iter_codings

V3 = "urn:hl7-org:v3"
SDTC = "urn:hl7-org:sdtc"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {None: V3, "sdtc": SDTC, "xsi": XSI}
XSI_TYPE = "xsi:type"
#: the root element's namespace declarations (NSMAP, default namespace first)
ROOT_NS = f' xmlns="{V3}" xmlns:sdtc="{SDTC}" xmlns:xsi="{XSI}"'
Node = xt.Node
#: what the writing helpers append to: a Node, or a plain list of parts of an entry written as one string
Parent = list[Any]
_Element = xt.Node
_leaf = xt.leaf
_element = xt.element
_text = xt.text

# : Templates whose R2.1 version must be accompanied by the R1.1 root without extension (C-CDA R2.1 Vol. 1 :
# "Design Considerations", CONF:1198-32934..32946; enforced by the Schematron pattern
# hasCompatibleR1.1TemplateId).
R11_COMPANIONS = frozenset(
    """1.3.6.1.4.1.19376.1.5.3.1.3.1 1.3.6.1.4.1.19376.1.5.3.1.3.33 2.16.840.1.113883.10.20.2.10
    2.16.840.1.113883.10.20.6.2.1 2.16.840.1.113883.10.20.6.2.2 2.16.840.1.113883.10.20.21.2.3
    2.16.840.1.113883.10.20.22.1.1 2.16.840.1.113883.10.20.22.1.2 2.16.840.1.113883.10.20.22.1.3
    2.16.840.1.113883.10.20.22.1.4 2.16.840.1.113883.10.20.22.1.5 2.16.840.1.113883.10.20.22.1.6
    2.16.840.1.113883.10.20.22.1.7 2.16.840.1.113883.10.20.22.1.8 2.16.840.1.113883.10.20.22.1.9
    2.16.840.1.113883.10.20.22.1.10 2.16.840.1.113883.10.20.22.2.1 2.16.840.1.113883.10.20.22.2.1.1
    2.16.840.1.113883.10.20.22.2.2 2.16.840.1.113883.10.20.22.2.2.1 2.16.840.1.113883.10.20.22.2.3
    2.16.840.1.113883.10.20.22.2.3.1 2.16.840.1.113883.10.20.22.2.4 2.16.840.1.113883.10.20.22.2.4.1
    2.16.840.1.113883.10.20.22.2.5 2.16.840.1.113883.10.20.22.2.5.1 2.16.840.1.113883.10.20.22.2.6
    2.16.840.1.113883.10.20.22.2.6.1 2.16.840.1.113883.10.20.22.2.7 2.16.840.1.113883.10.20.22.2.7.1
    2.16.840.1.113883.10.20.22.2.9 2.16.840.1.113883.10.20.22.2.10 2.16.840.1.113883.10.20.22.2.11
    2.16.840.1.113883.10.20.22.2.11.1 2.16.840.1.113883.10.20.22.2.14 2.16.840.1.113883.10.20.22.2.15
    2.16.840.1.113883.10.20.22.2.17 2.16.840.1.113883.10.20.22.2.18 2.16.840.1.113883.10.20.22.2.20
    2.16.840.1.113883.10.20.22.2.21 2.16.840.1.113883.10.20.22.2.21.1 2.16.840.1.113883.10.20.22.2.22
    2.16.840.1.113883.10.20.22.2.22.1 2.16.840.1.113883.10.20.22.2.23 2.16.840.1.113883.10.20.22.2.24
    2.16.840.1.113883.10.20.22.2.25 2.16.840.1.113883.10.20.22.2.26 2.16.840.1.113883.10.20.22.2.28
    2.16.840.1.113883.10.20.22.2.29 2.16.840.1.113883.10.20.22.2.30 2.16.840.1.113883.10.20.22.2.33
    2.16.840.1.113883.10.20.22.2.34 2.16.840.1.113883.10.20.22.2.36 2.16.840.1.113883.10.20.22.2.37
    2.16.840.1.113883.10.20.22.2.38 2.16.840.1.113883.10.20.22.2.43 2.16.840.1.113883.10.20.22.2.44
    2.16.840.1.113883.10.20.22.2.45 2.16.840.1.113883.10.20.22.4.1 2.16.840.1.113883.10.20.22.4.2
    2.16.840.1.113883.10.20.22.4.3 2.16.840.1.113883.10.20.22.4.4 2.16.840.1.113883.10.20.22.4.5
    2.16.840.1.113883.10.20.22.4.6 2.16.840.1.113883.10.20.22.4.7 2.16.840.1.113883.10.20.22.4.8
    2.16.840.1.113883.10.20.22.4.9 2.16.840.1.113883.10.20.22.4.12 2.16.840.1.113883.10.20.22.4.13
    2.16.840.1.113883.10.20.22.4.14 2.16.840.1.113883.10.20.22.4.16 2.16.840.1.113883.10.20.22.4.17
    2.16.840.1.113883.10.20.22.4.18 2.16.840.1.113883.10.20.22.4.19 2.16.840.1.113883.10.20.22.4.20
    2.16.840.1.113883.10.20.22.4.23 2.16.840.1.113883.10.20.22.4.25 2.16.840.1.113883.10.20.22.4.26
    2.16.840.1.113883.10.20.22.4.27 2.16.840.1.113883.10.20.22.4.28 2.16.840.1.113883.10.20.22.4.30
    2.16.840.1.113883.10.20.22.4.33 2.16.840.1.113883.10.20.22.4.34 2.16.840.1.113883.10.20.22.4.35
    2.16.840.1.113883.10.20.22.4.36 2.16.840.1.113883.10.20.22.4.38 2.16.840.1.113883.10.20.22.4.39
    2.16.840.1.113883.10.20.22.4.40 2.16.840.1.113883.10.20.22.4.41 2.16.840.1.113883.10.20.22.4.42
    2.16.840.1.113883.10.20.22.4.43 2.16.840.1.113883.10.20.22.4.44 2.16.840.1.113883.10.20.22.4.45
    2.16.840.1.113883.10.20.22.4.46 2.16.840.1.113883.10.20.22.4.48 2.16.840.1.113883.10.20.22.4.49
    2.16.840.1.113883.10.20.22.4.50 2.16.840.1.113883.10.20.22.4.51 2.16.840.1.113883.10.20.22.4.52
    2.16.840.1.113883.10.20.22.4.54 2.16.840.1.113883.10.20.22.4.60 2.16.840.1.113883.10.20.22.4.61
    2.16.840.1.113883.10.20.22.4.65 2.16.840.1.113883.10.20.22.4.66 2.16.840.1.113883.10.20.22.4.67
    2.16.840.1.113883.10.20.22.4.68 2.16.840.1.113883.10.20.22.4.70 2.16.840.1.113883.10.20.22.4.73
    2.16.840.1.113883.10.20.22.4.74 2.16.840.1.113883.10.20.22.4.75 2.16.840.1.113883.10.20.22.4.76
    2.16.840.1.113883.10.20.22.4.78 2.16.840.1.113883.10.20.22.4.79 2.16.840.1.113883.10.20.22.4.80
    2.16.840.1.113883.10.20.22.4.85 2.16.840.1.113883.10.20.24.3.90""".split()
)

#: whitespace anywhere (``re``'s ``\s`` on str is ``str.isspace``: a CDA ``cs`` code may contain none)
_HAS_SPACE = re.compile(r"\s").search
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ID_NS = uuid.UUID("6f1d3c8e-2b7a-5c0e-9a51-bb0d1eec0cda")
_ID_NS_BYTES = _ID_NS.bytes
_VARIANT = {x: "89ab"[int(x, 16) & 3] for x in "0123456789abcdef"}


def lst(value: Any) -> list[Any]:
    """A FHIR repeating element as a list, whatever the input holds: a list stays, a lone object becomes a
    one-item list (a common slip in hand-made data), anything else is empty."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    return []


def obj(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty one (so ``obj(x).get(...)`` never raises)."""
    return value if isinstance(value, dict) else {}


def str_or_none(value: Any) -> str | None:
    """The value when it is a string, else None (dirty data puts lists and numbers where codes belong)."""
    return value if isinstance(value, str) else None


def str_or(value: Any, default: str) -> str:
    """The value when it is a string (even empty), else ``default``."""
    return value if isinstance(value, str) else default


def clean(text: Any) -> str:
    """Text safe for XML 1.0 (forbidden control characters removed); non-strings become ''."""
    if not isinstance(text, str):
        if isinstance(text, int | float) and not isinstance(text, bool):
            return str(text)
        return ""
    return _BAD_XML.sub("", text) if _BAD_XML.search(text) else text


def el(parent: Parent, name: str, attrib: dict[str, str] | None = None, text: str | None = None) -> Node:
    """An element that may still get children (``name`` is a package constant, never data)."""
    return _element(parent, name, attrib, text)


def leaf(parent: Parent, name: str, attrib: dict[str, str] | None = None, text: str | None = None) -> None:
    """A finished element without children, written as escaped text (cheaper than a Node)."""
    parent.append(_leaf(name, attrib, text or None))


@functools.lru_cache(maxsize=512)
def _template_xml(root: str, ext: str | None) -> str:
    if ext:
        out = _leaf("templateId", {"root": root, "extension": ext})
        return out + _leaf("templateId", {"root": root}) if root in R11_COMPANIONS else out
    return _leaf("templateId", {"root": root})


def template(parent: Parent, root: str, ext: str | None = None) -> None:
    """templateId, plus the R1.1 companion (root only) where the Schematron requires it."""
    parent.append(_template_xml(root, ext))


def template_xml(root: str, ext: str | None = None) -> str:
    """:func:`template` as text, for entries written as one string."""
    return _template_xml(root, ext)


def uid(seed: str) -> str:
    """A stable UUID (lower case, CDA ``uid``) derived from a seed such as a resource key.

    Exactly ``str(uuid.uuid5(_ID_NS, seed))`` (RFC 4122 §4.3: SHA-1 of namespace + name, version 5, variant
    10xx), computed on the hex digest because it runs once per entry and ``uuid.UUID`` objects are slow.
    """
    h = hashlib.sha1(_ID_NS_BYTES + seed.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def stable_id(parent: Parent, seed: str, tag: str = "id") -> None:
    parent.append(f'<{tag} root="{uid(seed)}"/>')  # a uuid: nothing to escape


def identifiers(parent: Parent, res: dict[str, Any], seed: str, tag: str = "id") -> None:
    """The resource's business identifiers as II (system → OID), or one stable uuid id when it has none."""
    n = 0
    for ident in lst(res.get("identifier")):
        if not isinstance(ident, dict):
            continue
        value = clean(ident.get("value"))
        system = ident.get("system")
        if not value:
            continue
        if isinstance(system, str) and system:
            if system == "urn:ietf:rfc:3986" and value.startswith("urn:uuid:"):
                leaf(parent, tag, {"root": value[9:].lower()})
            elif system == "urn:ietf:rfc:3986" and value.startswith("urn:oid:") and codes.is_oid(value[8:]):
                leaf(parent, tag, {"root": value[8:]})
            else:
                leaf(parent, tag, {"root": codes.identifier_root(system), "extension": value})
            n += 1
    if not n:
        stable_id(parent, seed, tag)


# ------------------------------------------------------------------------------------------------- times --
_DT_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def ts(value: Any, *, min_day: bool = False) -> str | None:
    """FHIR date/dateTime/instant → HL7 TS; see :func:`_ts` (memoised: records repeat the same times)."""
    if not isinstance(value, str):
        return None
    return _ts(value, min_day)


@functools.lru_cache(maxsize=16384)
def _ts(value: str, min_day: bool) -> str | None:
    """FHIR date/dateTime/instant → HL7 TS (precision kept; a time carries its zone, as DT.US.FIELDED wants).

    A time without a zone (invalid FHIR, seen in dirty data) is cut to the day rather than guessed.
    ``min_day`` returns None for values less precise than a day (for elements that SHALL be precise to the
    day).
    """
    if not isinstance(value, str):
        return None
    m = _DT_RE.match(value.strip())
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    if min_day and not d:
        return None
    out = y + (mo or "") + (d or "")
    if hh and tz:
        out += hh + mi + (ss or "00")
        if frac and ss:
            out += frac[:5]
        out += "+0000" if tz == "Z" else tz.replace(":", "")
    return out


def ts_el(parent: Parent, tag: str, value: Any, *, null: str = "UNK") -> None:
    v = ts(value)  # a TS is digits, '.', '+' and '-' only: nothing to escape
    parent.append(f'<{tag} value="{v}"/>' if v else f'<{tag} nullFlavor="{xt.attr(null)}"/>')


def ivl_ts(
    parent: Parent,
    tag: str,
    low: Any,
    high: Any = None,
    *,
    high_null: bool = False,
    xsi_type: str | None = None,
) -> None:
    """IVL_TS with low (nullFlavor UNK when unknown) and an optional high."""
    lo = ts(low)
    hi = ts(high)
    head = f'<{tag} xsi:type="{xsi_type}">' if xsi_type else f"<{tag}>"
    low_xml = f'<low value="{lo}"/>' if lo else '<low nullFlavor="UNK"/>'
    if hi:
        high_xml = f'<high value="{hi}"/>'
    elif high_null:
        high_xml = '<high nullFlavor="UNK"/>'
    else:
        high_xml = ""
    parent.append(f"{head}{low_xml}{high_xml}</{tag}>")


_PERIOD_KEYS: dict[str, tuple[str, str]] = {}


def _period_keys(name: str) -> tuple[str, str]:
    keys = _PERIOD_KEYS[name] = (name + "DateTime", name + "Period")
    return keys


def period_of(res: dict[str, Any], *names: str) -> tuple[Any, Any]:
    """(start, end) from the first present of ``<name>DateTime`` / ``<name>Period`` / ``<name>`` fields."""
    for name in names:
        dt_key, period_key = _PERIOD_KEYS.get(name) or _period_keys(name)
        v = res.get(dt_key)
        if isinstance(v, str):
            return v, None
        v = res.get(period_key)
        if isinstance(v, dict):
            return v.get("start"), v.get("end")
        v = res.get(name)
        if isinstance(v, str):
            return v, None
        if isinstance(v, dict) and ("start" in v or "end" in v):
            return v.get("start"), v.get("end")
    return None, None


def display_date(value: Any) -> str:
    """A FHIR date for the narrative: the date part only (people read dates, not instants)."""
    return value[:10] if isinstance(value, str) else ""


# ------------------------------------------------------------------------------------------------- codes --
def coding_attrs(c: dict[str, Any]) -> dict[str, str] | None:
    """CD attributes of one Coding (None when it has no usable code/system); never mutate the result."""
    code, system, disp = c.get("code"), c.get("system"), c.get("display")
    if not isinstance(code, str) or not isinstance(system, str):
        return None
    hit = _coding_cached(code, system, disp if isinstance(disp, str) else None)
    return hit[0] if hit else None


def _coding(c: dict[str, Any]) -> tuple[dict[str, str], str] | None:
    """:func:`coding_attrs` with the attributes also rendered as escaped XML text."""
    code, system, disp = c.get("code"), c.get("system"), c.get("display")
    if not isinstance(code, str) or not isinstance(system, str):
        return None
    return _coding_cached(code, system, disp if isinstance(disp, str) else None)


@functools.lru_cache(maxsize=8192)
def _coding_cached(code: str, system: str, display: str | None) -> tuple[dict[str, str], str] | None:
    code = clean(code).strip()
    if not code or not system or _HAS_SPACE(code):
        return None
    oid = codes.oid_for(system)
    a = {"code": code, "codeSystem": oid}
    # a system the table does not know keeps its URI as the name, so a reader can still tell what it was
    name = codes.name_for(oid) or (system if oid.startswith("2.25.") else None)
    if name:
        a["codeSystemName"] = clean(name)
    disp = clean(display)
    if disp:
        a["displayName"] = disp
    return a, xt.attrs(a)


def cc_text(cc: Any) -> str:
    """Human text of a CodeableConcept: its text, else the first coding display, else the first code."""
    if not isinstance(cc, dict):
        return ""
    t = clean(cc.get("text"))
    if t:
        return t
    for c in iter_codings(cc):
        d = clean(c.get("display"))
        if d:
            return d
    for c in iter_codings(cc):
        d = clean(c.get("code"))
        if d:
            return d
    return ""


#: rendered concepts of the current build, keyed by the content of one-coding concepts (a record repeats the
#: same few codes hundreds of times); emptied after every build (``clear_build_caches``)
_CONCEPTS: dict[tuple[Any, ...], tuple[dict[str, str], str, str, bool, tuple[str, ...]]] = {}


def clear_build_caches() -> None:
    _CONCEPTS.clear()


def _concept(
    cc: Any, prefer: Sequence[str], xsi_type: str | None, null: str, text: bool, require: str | None
) -> tuple[dict[str, str], str, str, bool, tuple[str, ...]]:
    """(attributes, the same rendered, the concept's words, no code chosen, translations as XML text)."""
    key = None
    if cc.__class__ is dict and len(cc) <= 2:
        coding = cc.get("coding")
        if (
            coding.__class__ is list
            and len(coding) == 1
            and coding[0].__class__ is dict
            and len(cc) == (2 if "text" in cc else 1)
        ):
            c = coding[0]
            key = (
                c.get("system"),
                c.get("code"),
                c.get("display"),
                cc.get("text"),
                prefer,
                xsi_type,
                null,
                text,
                require,
            )
            try:
                hit = _CONCEPTS.get(key)
            except TypeError:  # a value that is not hashable (dirty data): just compute it
                key = hit = None
            if hit is not None:
                return hit
    out = _concept_uncached(cc, prefer, xsi_type, null, text, require)
    if key is not None and len(_CONCEPTS) < 4096:
        _CONCEPTS[key] = out
    return out


def _concept_uncached(
    cc: Any, prefer: Sequence[str], xsi_type: str | None, null: str, text: bool, require: str | None
) -> tuple[dict[str, str], str, str, bool, tuple[str, ...]]:
    if isinstance(cc, dict) and "coding" not in cc and "code" in cc and "system" in cc:
        cc = {"coding": [cc]}
    usable: list[tuple[dict[str, str], str]] = []
    coding = cc.get("coding") if isinstance(cc, dict) else None
    for c in coding if isinstance(coding, list) else ():
        a = _coding(c) if isinstance(c, dict) else None
        if a is not None and a not in usable:
            usable.append(a)
    main: tuple[dict[str, str], str] | None = None
    for oid in prefer:
        for a in usable:
            if a[0]["codeSystem"] == oid:
                main = a
                break
        if main:
            break
    if main is None:
        for a in usable:
            if not a[0]["codeSystem"].startswith("2.25."):
                main = a
                break
    if require and main is not None and main[0]["codeSystem"] != require:
        main = None  # the template demands this system: say "other" in it and keep the codes as translations
    if main:
        attrib, rendered = main
    else:
        attrib = {"nullFlavor": "OTH" if usable else null}
        if require:
            attrib["codeSystem"] = require
        rendered = xt.attrs(attrib)
    if xsi_type:
        attrib = {XSI_TYPE: xsi_type, **attrib}
        rendered = f' xsi:type="{xt.attr(xsi_type)}"{rendered}'
    txt = cc_text(cc) if text else ""
    translations = tuple(f"<translation{a[1]}/>" for a in usable if a is not main)
    return attrib, rendered, txt, main is None, translations


class CdOptions(TypedDict, total=False):
    """The keyword options :func:`cd` and :func:`cd_node` share (one list, so the two cannot drift apart).

    ``prefer``: code system OIDs in preference order; ``ref``: narrative id the originalText points at;
    ``xsi_type``: the element's xsi:type (a value slot typed ANY); ``null``: the nullFlavor when no coding is
    usable; ``text``: whether to carry the concept's words; ``require``: the code system the template demands.
    """

    prefer: Sequence[str]
    ref: str | None
    xsi_type: str | None
    null: str
    text: bool
    require: str | None


def _cd_parts(
    cc: Any,
    prefer: Sequence[str] = (),
    ref: str | None = None,
    xsi_type: str | None = None,
    null: str = "UNK",
    text: bool = True,
    require: str | None = None,
) -> tuple[dict[str, str], str, list[str]]:
    """(attributes, the same rendered, children as XML text) of :func:`cd`."""
    attrib, rendered, txt, no_code, translations = _concept(cc, prefer, xsi_type, null, text, require)
    kids: list[str] = []
    if ref or txt:
        # without a code the words are the concept: spell them out, not only point at the narrative
        words = xt.text(txt) if txt and (no_code or not ref) else ""
        if ref:
            kids.append(f'<originalText>{words}<reference value="#{xt.attr(ref)}"/></originalText>')
        else:
            kids.append(f"<originalText>{words}</originalText>")
    kids.extend(translations)
    return attrib, rendered, kids


def cd(parent: Parent, tag: str, cc: Any, **options: Unpack[CdOptions]) -> None:
    """CD/CE from a CodeableConcept (or a single Coding), appended as finished XML text.

    The first coding of a preferred system (in ``prefer`` order) becomes the code; every other usable coding
    is a ``translation`` (codings of systems the table does not know keep their URI as codeSystemName).  With
    no known-system coding the code gets ``nullFlavor="OTH"`` (CDA R2 data types: the concept exists but is
    outside the expected systems), with the text in originalText so nothing is dropped.
    """
    _, rendered, kids = _cd_parts(cc, **options)
    if kids:
        parent.append(f"<{tag}{rendered}>{''.join(kids)}</{tag}>")
    else:
        parent.append(f"<{tag}{rendered}/>")


def cd_pair(tag: str, cc: Any, prefer: Sequence[str], ref: str) -> tuple[str, str]:
    """The same concept twice, computed once: ``cd(...)`` without a narrative reference (an organizer's code)
    and ``cd(..., ref=ref)`` (its one observation's code), as finished XML text."""
    _, rendered, kids = _cd_parts(cc, prefer, None, None, "UNK", True, None)
    _, _, txt, no_code, trans = _concept(cc, prefer, None, "UNK", True, None)
    translations = "".join(trans)
    # with a code the observation's originalText only points at the narrative (see _cd_parts)
    words = xt.text(txt) if txt and no_code else ""
    first = f"<{tag}{rendered}>{''.join(kids)}</{tag}>" if kids else f"<{tag}{rendered}/>"
    second = (
        f'<{tag}{rendered}><originalText>{words}<reference value="#{xt.attr(ref)}"/></originalText>'
        f"{translations}</{tag}>"
    )
    return first, second


def cd_node(parent: Parent, tag: str, cc: Any, **options: Unpack[CdOptions]) -> Node:
    """:func:`cd` as a Node, for the callers that inspect or extend it (a translation added by a rule)."""
    attrib, _, kids = _cd_parts(cc, **options)
    e = Node(tag, attrib, parent)
    e.extend(kids)
    return e


def has_code(cc: Any, oid: str, code_values: Iterable[str]) -> bool:
    wanted = set(code_values)
    for c in iter_codings(cc):
        s = c.get("system")
        if isinstance(s, str) and codes.oid_for(s) == oid and c.get("code") in wanted:
            return True
    return False


def code_value(value: Any) -> str | None:
    """A usable code (CDA ``cs``: non-empty, no whitespace inside), stripped; None otherwise."""
    if not isinstance(value, str):
        return None
    v = clean(value).strip()
    return v if v and not _HAS_SPACE(v) else None


def first_code(cc: Any, oid: str) -> str | None:
    """The first usable code of the concept in the code system ``oid``."""
    for c in iter_codings(cc):
        s = c.get("system")
        if isinstance(s, str) and codes.oid_for(s) == oid:
            v = code_value(c.get("code"))
            if v:
                return v
    return None


def _simple_code_attrs(code: str, system: str, display: str | None, name: str | None) -> dict[str, str]:
    a = {"code": code, "codeSystem": system}
    n = name or codes.name_for(system)
    if n:
        a["codeSystemName"] = n
    if display:
        a["displayName"] = display
    return a


def simple_code(
    parent: Parent, tag: str, code: str, system: str, display: str | None = None, name: str | None = None
) -> Node:
    """A CD from fixed values, as a Node (the caller adds translations)."""
    return Node(tag, _simple_code_attrs(code, system, display, name), parent)


def simple_code_leaf(
    parent: Parent, tag: str, code: str, system: str, display: str | None = None, name: str | None = None
) -> None:
    """:func:`simple_code` without children (a finished string)."""
    parent.append(_leaf(tag, _simple_code_attrs(code, system, display, name)))


# ------------------------------------------------------------------------------------------- quantities --
_NUM_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def num(value: Any) -> str | None:
    """A FHIR decimal as a CDA REAL literal, or None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        s = repr(value)
        if "e" in s or "E" in s:
            s = f"{value:.10f}".rstrip("0").rstrip(".")
        return s
    if isinstance(value, str) and _NUM_RE.match(value.strip()):
        return value.strip()
    return None


def ucum_unit(q: dict[str, Any]) -> str:
    """The UCUM unit of a Quantity: its code when the system is UCUM, else its blank-free unit text."""
    code = code_value(q.get("code"))
    system = q.get("system")
    if code and (not system or system == "http://unitsofmeasure.org"):
        return code
    return code_value(q.get("unit")) or "1"


def pq(parent: Parent, tag: str, q: Any, *, xsi: bool = True) -> str | None:
    """PQ from a FHIR Quantity (appended as finished XML, also returned); None when the value is not a
    number."""
    if not isinstance(q, dict):
        return None
    v = num(q.get("value"))
    if v is None:
        return None
    unit = xt.attr(clean(ucum_unit(q)))  # v is a REAL literal (digits, sign, '.', 'e'): nothing to escape
    out = (
        f'<{tag} xsi:type="PQ" value="{v}" unit="{unit}"/>' if xsi else f'<{tag} value="{v}" unit="{unit}"/>'
    )
    parent.append(out)
    return out


def quantity_text(q: Any) -> str:
    if not isinstance(q, dict):
        return ""
    v = num(q.get("value"))
    if v is None:
        return ""
    unit = clean(q.get("unit")) or clean(q.get("code"))
    comp = clean(q.get("comparator"))
    return f"{comp}{v} {unit}".strip()


# ------------------------------------------------------------------------------------- people and places --
# CDA R2 PostalAddressUse and TelecommunicationAddressUse have no "old": such addresses go without a use
_ADDR_USE = {"home": "H", "work": "WP", "temp": "TMP", "billing": "PST"}
_TEL_USE = {"home": "HP", "work": "WP", "mobile": "MC", "temp": "TMP"}
# CDA R2 EntityNameUse has no "old"/"maiden"/"anonymous": such names are not emitted as the person's name.
_NAME_USE = {"usual": "L", "official": "L", "nickname": "P", "temp": "L"}
#: ``<addr>`` / ``<name>`` with each possible use ("" for none), so their end tags come from their start tags
_ADDR_WRAPS = {u: xt.Wrap(("addr", {"use": u} if u else None)) for u in ("", *_ADDR_USE.values())}
_NAME_WRAPS = {u: xt.Wrap(("name", {"use": u} if u else None)) for u in ("", *_NAME_USE.values())}


def addr(parent: Parent, a: Any, *, required: bool = True) -> str | None:
    """AD (US Realm Address, 2.16.840.1.113883.10.20.22.5.2: streetAddressLine, city, state, postalCode)."""
    if not isinstance(a, dict):
        if required:
            parent.append('<addr nullFlavor="NI"/>')
            return "addr"
        return None
    wrap = _ADDR_WRAPS[_ADDR_USE.get(str_or_none(a.get("use")) or "", "")]
    out = wrap.open()
    lines = [clean(x) for x in lst(a.get("line")) if clean(x)]
    if not lines and clean(a.get("text")):
        lines = [clean(a.get("text"))]
    for line in lines[:4]:
        out.append(_leaf("streetAddressLine", None, line))
    if not lines:
        out.append('<streetAddressLine nullFlavor="NI"/>')
    city = clean(a.get("city"))
    out.append(_leaf("city", None, city) if city else '<city nullFlavor="NI"/>')
    state = clean(a.get("state"))
    country = clean(a.get("country"))
    if state:
        out.append(_leaf("state", None, state))
    elif country in ("", "US", "USA"):
        out.append('<state nullFlavor="NI"/>')
    pc = clean(a.get("postalCode"))
    if pc:
        out.append(_leaf("postalCode", None, pc))
    elif country in ("", "US", "USA"):
        out.append('<postalCode nullFlavor="NI"/>')
    if country:
        out.append(_leaf("country", None, country))
    wrap.close_into(parent, out)
    return "addr"


def addrs(parent: Parent, items: Any) -> None:
    usable = [a for a in lst(items) if isinstance(a, dict)]
    if not usable:
        addr(parent, None)
    for a in usable:
        addr(parent, a)


_TEL_PREFIX = {"phone": "tel:", "fax": "fax:", "email": "mailto:", "url": "", "sms": "tel:", "pager": "tel:"}


def telecom(parent: Parent, items: Any, *, required: bool = True, limit: int = 99) -> None:
    n = 0
    for t in lst(items):
        if not isinstance(t, dict):
            continue
        value = clean(t.get("value")).strip()
        if not value:
            continue
        prefix = _TEL_PREFIX.get(str_or_none(t.get("system")) or "", "tel:")
        if prefix == "tel:" or prefix == "fax:":
            value = re.sub(r"[^0-9+()\-.]", "", value) or value.replace(" ", "")
        elif prefix == "mailto:":
            value = value.replace(" ", "")
        a = {"value": value if ":" in value and prefix == "" else prefix + value}
        use = _TEL_USE.get(str_or_none(t.get("use")) or "")
        if use:
            a["use"] = use
        parent.append(_leaf("telecom", a))
        n += 1
        if n >= limit:
            break
    if not n and required:
        parent.append('<telecom nullFlavor="NI"/>')


def best_name(names: Any) -> dict[str, Any] | None:
    """The name to show: official/usual first, never an old one when another exists."""
    usable = [n for n in lst(names) if isinstance(n, dict)]
    if not usable:
        return None
    for want in ("official", "usual", None):
        for n in usable:
            if n.get("use") == want:
                return n
    current = [n for n in usable if n.get("use") != "old"]
    return (current or usable)[0]


def name_text(n: Any) -> str:
    if not isinstance(n, dict):
        return ""
    if clean(n.get("text")):
        return clean(n.get("text"))
    parts = [clean(x) for x in lst(n.get("given")) if clean(x)]
    fam = clean(n.get("family"))
    return " ".join([*parts, fam]).strip()


def person_name(parent: Parent, n: Any, *, patient: bool = False) -> None:
    """PN (US Realm Person Name, 2.16.840.1.113883.10.20.22.5.1.1: given and family SHALL be present)."""
    if not isinstance(n, dict):
        parent.append('<name nullFlavor="UNK"/>')
        return
    wrap = _NAME_WRAPS[_NAME_USE.get(str_or_none(n.get("use")) or "", "")]
    out = wrap.open()
    for p in lst(n.get("prefix")):
        if clean(p):
            out.append(_leaf("prefix", None, clean(p)))
    given = [clean(x) for x in lst(n.get("given")) if clean(x)]
    fam = clean(n.get("family"))
    if not given and not fam and clean(n.get("text")):
        words = clean(n.get("text")).split()
        given, fam = words[:-1], words[-1]
    for g in given:
        out.append(_leaf("given", None, g))
    if not given:
        out.append('<given nullFlavor="UNK"/>')
    out.append(_leaf("family", None, fam) if fam else '<family nullFlavor="UNK"/>')
    for s in lst(n.get("suffix")):
        if clean(s):
            out.append(_leaf("suffix", None, clean(s)))
    wrap.close_into(parent, out)


# ------------------------------------------------------------------------------------------- narrative --
_HEAD_ROW = xt.Wrap(("thead", None), ("tr", None))
#: a row's start and end from one Wrap; rows are the hottest writes, so they are joined inline
_ROW = xt.Wrap(("tr", None))
_ROW_START, _ROW_END = _ROW.start, _ROW.end


class Table:
    """One narrative table of a section; rows get document-unique IDs that entries point to.

    Rows are written as escaped XML text straight into the ``tbody`` (``pending`` *is* its child list, so a
    failed entry's row is rolled back like its XML: ``del pending[mark:]``).
    """

    __slots__ = ("_n", "_plain", "pending", "prefix", "tbody", "text")

    def __init__(self, section: Node, prefix: str, headers: Sequence[str]) -> None:
        self.text = el(section, "text")
        self.prefix = prefix
        self._plain = xt.attr(prefix) == prefix  # then no row ID (prefix + digits) needs escaping
        self._n = 0
        table = el(self.text, "table", {"border": "1", "width": "100%"})
        table.append(_HEAD_ROW.around("".join(_leaf("th", None, h) for h in headers)))
        self.tbody = el(table, "tbody")
        self.pending: list[str] = self.tbody.kids

    def row(self, cells: Sequence[str], *, extra: Sequence[str] = ()) -> str:
        """Add a row; return the ID of its first cell (the entry's ``text/reference``).  ``extra`` IDs are put
        on the following cells, in order, so sub-entries can point at their own cell."""
        self._n += 1
        rid = f"{self.prefix}{self._n}"
        if cells and not extra:  # the usual row: only the first cell has an ID
            # a cell's text, escaped (XML-illegal characters dropped); non-strings go through clean()
            c = cells[0]
            first = (_text(c) if c.__class__ is str else _text(clean(c))) if c else ""
            rid_attr = rid if self._plain else xt.attr(rid)
            row = [
                f'{_ROW_START}<td ID="{rid_attr}">{first}</td>'
                if first
                else f'{_ROW_START}<td ID="{rid_attr}"/>'
            ]
            for c in cells[1:]:
                text = (_text(c) if c.__class__ is str else _text(clean(c))) if c else ""
                row.append(f"<td>{text}</td>" if text else "<td/>")
            row.append(_ROW_END)
            self.pending.append("".join(row))
            return rid
        parts = [_ROW_START]
        n_ids = len(extra) + 1
        for i, c in enumerate(cells):
            # XML-illegal characters are dropped by the escape itself; non-strings go through clean()
            text = (_text(c) if c.__class__ is str else _text(clean(c))) if c else ""
            cell_id = (rid if i == 0 else extra[i - 1]) if i < n_ids else ""
            if cell_id:
                opening = f'<td ID="{xt.attr(cell_id)}"'
                parts.append(f"{opening}>{text}</td>" if text else opening + "/>")
            else:
                parts.append(f"<td>{text}</td>" if text else "<td/>")
        parts.append(_ROW_END)
        self.pending.append("".join(parts))
        return rid

    def flush(self) -> None:
        """Nothing left to do: rows are written into the body as they come (kept for the section API)."""

    @property
    def rows(self) -> int:
        return len(self.pending)


def text_ref(parent: Parent, ref: str) -> None:
    """``<text><reference value="#ref"/></text>``: the entry points at its narrative (CDA R2 §4.3.5.1)."""
    parent.append(f'<text><reference value="#{xt.attr(ref)}"/></text>')

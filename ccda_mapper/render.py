"""Patient-friendly HTML view of a C-CDA document (``bbdirect ccda --html`` and the "preview what will be
sent" page).

Why our own renderer instead of HL7's CDA.xsl: the preview is shown inside our web pages to the patient who
is about to send the record, so it must be safe to embed (no scripts, no external loads, every value
escaped), readable on a 360 px phone, and accessible (landmarks, headings, table captions and header scopes).
It shows what a clinician will read: the patient header and each section's human-readable narrative
(CDA R2 section 4.3.5: the narrative block is the attested content; entries only mirror it).

The narrative block is converted element by element through an allow-list (CDA R2 NarrativeBlock.xsd:
content, linkHtml, sub, sup, br, footnote, footnoteRef, renderMultiMedia, paragraph, list/item, table and
its parts). Unknown elements keep their text but lose their markup; attributes are never copied except
``styleCode`` (mapped to a fixed set of classes), table spans, and ``linkHtml/@href`` when it is an
http(s)/mailto URL. The output tree is built with lxml and serialised by it, so escaping is not hand-made.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lxml import etree
from lxml import html as lhtml

from .safexml import has_doctype, safe_parser

V3 = "urn:hl7-org:v3"
SDTC = "urn:hl7-org:sdtc"
NS = {"v3": V3, "sdtc": SDTC}

_CSS = """
:root{color-scheme:light;--ink:#1b1b1b;--muted:#555;--line:#c8c8c8;--band:#f2f5f8;--accent:#1a4f8b}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--ink);background:#fff}
main{max-width:60rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.25rem 0 1rem;color:var(--accent)}
h2{font-size:1.2rem;margin:2rem 0 .5rem;padding-bottom:.25rem;border-bottom:2px solid var(--accent)}
h3{font-size:1.05rem;margin:1.25rem 0 .5rem}
.patient{background:var(--band);border-radius:.5rem;padding:.75rem 1rem}
.patient dl{display:grid;grid-template-columns:minmax(7rem,max-content) 1fr;gap:.25rem 1rem;margin:0}
.patient dt{font-weight:600;color:var(--muted)}
.patient dd{margin:0;overflow-wrap:anywhere}
.meta{color:var(--muted);font-size:.9rem}
nav ul{display:flex;flex-wrap:wrap;gap:.25rem .75rem;padding:0;list-style:none}
a{color:var(--accent)}
.scroll{overflow-x:auto;max-width:100%;border:1px solid var(--line);border-radius:.25rem}
.scroll:focus{outline:3px solid var(--accent)}
table{border-collapse:collapse;width:100%;min-width:18rem}
caption{text-align:left;font-weight:600;padding:.5rem}
th,td{border-top:1px solid var(--line);padding:.4rem .5rem;text-align:left;vertical-align:top;
  overflow-wrap:break-word;hyphens:auto}
thead th{background:var(--band)}
.empty{font-style:italic;color:var(--muted)}
.sc-bold{font-weight:700}.sc-italics{font-style:italic}.sc-underline{text-decoration:underline}
.sc-emphasis{font-style:italic}.footnote{font-size:.85rem;color:var(--muted)}
@media (max-width:30rem){main{padding:.5rem}.patient dl{grid-template-columns:1fr}
  .patient dt{margin-top:.25rem}}
@media print{nav{display:none}.scroll{overflow:visible;border:0}}
"""

#: Content-Security-Policy for the page itself: nothing may load or run, inline CSS only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_SEX = {"M": "Male", "F": "Female", "UN": "Other", "UNK": "Unknown"}
_LANG = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "zh": "Chinese",
         "vi": "Vietnamese", "ko": "Korean", "ar": "Arabic", "ru": "Russian", "pt": "Portuguese",
         "it": "Italian", "ja": "Japanese", "tl": "Tagalog", "hi": "Hindi", "pl": "Polish",
         "ht": "Haitian Creole"}  # fmt: skip
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")  # fmt: skip
_STYLE_CODES = {
    "bold": "sc-bold",
    "italics": "sc-italics",
    "underline": "sc-underline",
    "emphasis": "sc-emphasis",
}
_SAFE_HREF = re.compile(r"^(https?://|mailto:)[^\s\"'<>]+$", re.IGNORECASE)
_TELECOM_USE = {"HP": "home", "H": "home", "WP": "work", "MC": "mobile", "HV": "vacation"}


class RenderError(ValueError):
    """The input is not an XML document that can be shown (stable code for the CLI)."""

    code = "ccda_render"


def _q(tag: str) -> str:
    return f"{{{V3}}}{tag}"


def _local(node: etree._Element | None) -> str:
    return etree.QName(node).localname if node is not None and isinstance(node.tag, str) else ""


def _words(node: etree._Element | None) -> str:
    """All text of ``node`` with whitespace runs collapsed ("" for no node)."""
    if node is None:
        return ""
    return " ".join("".join(t for t in node.itertext() if isinstance(t, str)).split())


def _date_of(node: etree._Element | None) -> str | None:
    """``human_date`` of a TS element's ``value`` (None for no element)."""
    return human_date(node.get("value")) if node is not None else None


def _el(tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    node = etree.Element(tag, {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()})
    if text:
        node.text = text
    return node


def _add(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    node = _el(tag, text, **attrs)
    parent.append(node)
    return node


def _append_text(parent: etree._Element, text: str | None) -> None:
    """Append text after the last child of ``parent`` (lxml keeps trailing text in ``.tail``)."""
    if not text:
        return
    if len(parent):
        parent[-1].tail = (parent[-1].tail or "") + text
    else:
        parent.text = (parent.text or "") + text


def human_date(ts: str | None) -> str | None:
    """HL7 TS ``20141015103026-0500`` -> ``October 15, 2014`` (precision kept: ``2014``, ``October 2014``)."""
    if not ts:
        return None
    m = re.match(r"^(\d{4})(\d{2})?(\d{2})?", ts)
    if not m:
        return ts
    year, month, day = m.groups()
    if not month or not 1 <= int(month) <= 12:
        return year
    name = _MONTHS[int(month) - 1]
    return f"{name} {int(day)}, {year}" if day else f"{name} {year}"


def _person_name(name: etree._Element | None) -> str | None:
    if name is None:
        return None
    parts: list[str] = []
    for tag in ("prefix", "given", "family", "suffix"):
        parts.extend(" ".join(n.text.split()) for n in name.iterfind(_q(tag)) if n.text and n.text.strip())
    if not parts and name.text and name.text.strip():  # unstructured name
        parts.append(" ".join(name.text.split()))
    return " ".join(parts) or None


def _coded(node: etree._Element | None) -> str | None:
    if node is None:
        return None
    original = node.findtext(f"{_q('originalText')}")
    return (
        node.get("displayName")
        or (original.strip() if original and original.strip() else None)
        or (node.get("code") if not node.get("nullFlavor") else None)
    )


def _address(addr: etree._Element) -> str | None:
    lines = [
        " ".join(n.text.split()) for n in addr.iterfind(_q("streetAddressLine")) if n.text and n.text.strip()
    ]
    city_line = " ".join(
        t
        for t in (
            (addr.findtext(_q("city")) or "").strip() + ("," if addr.findtext(_q("city")) else ""),
            (addr.findtext(_q("state")) or "").strip(),
            (addr.findtext(_q("postalCode")) or "").strip(),
        )
        if t and t != ","
    )
    country = (addr.findtext(_q("country")) or "").strip()
    text = ", ".join(p for p in [*lines, city_line, country] if p)
    return text or None


def _telecom(tel: etree._Element) -> str | None:
    value = tel.get("value") or ""
    if not value:
        return None
    scheme, _, rest = value.partition(":")
    label = {"tel": "Phone", "mailto": "Email", "fax": "Fax"}.get(scheme.lower(), "")
    use = _TELECOM_USE.get((tel.get("use") or "").split(" ")[0], "")
    shown = rest if label else value
    prefix = " ".join(x for x in (label, f"({use})" if use else "") if x)
    return f"{prefix}: {shown}" if prefix else shown


# ----------------------------------------------------------------------------------------- header --
def _patient_facts(doc: etree._Element) -> list[tuple[str, str]]:
    role = doc.find(f"{_q('recordTarget')}/{_q('patientRole')}")
    if role is None:
        return []
    patient = role.find(_q("patient"))
    facts: list[tuple[str, str]] = []

    def fact(label: str, value: str | None) -> None:
        if value:
            facts.append((label, value))

    if patient is not None:
        names = [n for n in (_person_name(x) for x in patient.iterfind(_q("name"))) if n]
        fact("Name", names[0] if names else None)
        if len(names) > 1:
            fact("Also known as", "; ".join(dict.fromkeys(names[1:])))
        fact("Date of birth", _date_of(patient.find(_q("birthTime"))))
        gender = patient.find(_q("administrativeGenderCode"))
        if gender is not None:
            fact("Sex", gender.get("displayName") or _SEX.get(gender.get("code") or "", None))
        deceased = patient.find(f"{{{SDTC}}}deceasedInd")
        deceased_time = patient.find(f"{{{SDTC}}}deceasedTime")
        if deceased_time is not None and deceased_time.get("value"):
            fact("Deceased", human_date(deceased_time.get("value")))
        elif deceased is not None and deceased.get("value") == "true":
            fact("Deceased", "Yes")
        races = [_coded(n) for n in [patient.find(_q("raceCode")), *patient.iterfind(f"{{{SDTC}}}raceCode")]]
        fact("Race", ", ".join(dict.fromkeys(r for r in races if r)))
        ethnic = [
            _coded(n)
            for n in [patient.find(_q("ethnicGroupCode")), *patient.iterfind(f"{{{SDTC}}}ethnicGroupCode")]
        ]
        fact("Ethnicity", ", ".join(dict.fromkeys(e for e in ethnic if e)))
        langs: list[str] = []
        for comm in patient.iterfind(_q("languageCommunication")):
            code = comm.find(_q("languageCode"))
            tag = code.get("code") if code is not None else None
            if not tag:
                continue
            lang = _LANG.get(tag.split("-")[0].lower(), tag)
            pref = comm.find(_q("preferenceInd"))
            langs.append(f"{lang} (preferred)" if pref is not None and pref.get("value") == "true" else lang)
        fact("Language", ", ".join(langs))
    addresses = [a for a in (_address(x) for x in role.iterfind(_q("addr"))) if a]
    fact("Address", "; ".join(addresses))
    phones = [t for t in (_telecom(x) for x in role.iterfind(_q("telecom"))) if t]
    fact("Contact", "; ".join(phones))
    return facts


def _organization(doc: etree._Element, path: str) -> str | None:
    node = doc.find(path, {"v3": V3})
    if node is None:
        return None
    name = " ".join((node.findtext(_q("name")) or "").split())
    return name or None


# -------------------------------------------------------------------------------------- narrative --
def _style_class(node: etree._Element) -> str | None:
    classes = [
        _STYLE_CODES[s.lower()] for s in (node.get("styleCode") or "").split() if s.lower() in _STYLE_CODES
    ]
    return " ".join(classes) or None


def _convert_children(src: etree._Element, dest: etree._Element) -> None:
    _append_text(dest, src.text)
    for child in src:
        if isinstance(child.tag, str):
            _convert(child, dest)
        _append_text(dest, child.tail)


_SIMPLE = {"paragraph": "p", "sub": "sub", "sup": "sup", "caption": "caption", "thead": "thead",
           "tbody": "tbody", "tfoot": "tfoot", "tr": "tr", "colgroup": "colgroup", "col": "col"}  # fmt: skip


def _convert(src: etree._Element, dest: etree._Element) -> None:
    """Append the HTML form of one narrative element to ``dest`` (allow-list; see module docstring)."""
    if etree.QName(src).namespace != V3:
        return  # foreign markup has no meaning in a CDA narrative
    tag = _local(src)
    cls = _style_class(src)
    extra = {"class": cls} if cls else {}
    if tag == "br":
        dest.append(_el("br"))
        return
    if tag == "renderMultiMedia":
        _add(dest, "span", "[attachment not shown]", class_="empty")
        return
    if tag == "footnoteRef":
        _add(dest, "sup", "*")
        return
    if tag == "content":
        out = _el("del" if src.get("revised") == "delete" else "span", **extra)
    elif tag == "linkHtml":
        href = (src.get("href") or "").strip()
        if _SAFE_HREF.match(href):
            out = _el("a", href=href, rel="noopener noreferrer nofollow", **extra)
        else:
            out = _el("span", **extra)
    elif tag == "footnote":
        out = _el("span", class_="footnote")
    elif tag == "list":
        out = _el("ol" if src.get("listType") == "ordered" else "ul", **extra)
    elif tag == "item":
        out = _el("li", **extra)
    elif tag == "table":
        wrapper = _add(dest, "div", class_="scroll", tabindex="0", role="region", aria_label="table")
        out = _el("table", **extra)
        wrapper.append(out)
        _convert_children(src, out)
        _fix_table(out)
        return
    elif tag in ("th", "td"):
        out = _el(tag, **extra)
        for span in ("colspan", "rowspan"):
            if (src.get(span) or "").isdigit():
                out.set(span, src.get(span, ""))
        if tag == "th":
            out.set("scope", "col" if _local(src.getparent()) == "tr" and _in_thead(src) else "row")
    elif tag in _SIMPLE:
        out = _el(_SIMPLE[tag], **extra)
        if tag == "col" and (src.get("span") or "").isdigit():
            out.set("span", src.get("span", ""))
    else:  # unknown element (e.g. a section's nested <text> or hostile markup): keep its text only
        out = _el("span")
    dest.append(out)
    if tag != "col":
        _convert_children(src, out)


def _in_thead(th: etree._Element) -> bool:
    row = th.getparent()
    return row is not None and row.getparent() is not None and _local(row.getparent()) == "thead"


def _fix_table(table: etree._Element) -> None:
    """HTML requires <caption> first; CDA allows rows directly under table in practice (tolerate both)."""
    caption = table.find("caption")
    if caption is not None and table.index(caption) != 0:
        table.remove(caption)
        table.insert(0, caption)
    label = _words(caption)
    wrapper = table.getparent()
    if wrapper is not None and label:
        wrapper.set("aria-label", label)


def _section(section: etree._Element, parent: etree._Element, level: int, index: list[int]) -> None:
    index[0] += 1
    anchor = f"section-{index[0]}"
    title = _words(section.find(_q("title"))) or _coded(section.find(_q("code"))) or "Section"
    box = _add(parent, "section", aria_labelledby=anchor)
    _add(box, f"h{min(level, 6)}", title, id=anchor)
    text = section.find(_q("text"))
    has_content = text is not None and (len(text) or (text.text and text.text.strip()))
    if section.get("nullFlavor") or text is None or not has_content:
        _add(box, "p", "No information", class_="empty")
    else:
        body = _add(box, "div", class_="narrative")
        _convert_children(text, body)
        # Each scrollable table region needs a name of its own, distinct from its section's (two landmarks
        # with one name confuse screen-reader navigation).
        unnamed = [
            w for w in body.iter("div") if w.get("class") == "scroll" and w.get("aria-label") == "table"
        ]
        for number, wrapper in enumerate(unnamed, 1):
            suffix = f" {number}" if len(unnamed) > 1 else ""
            wrapper.set("aria-label", f"{title}: table{suffix}")
    for sub in section.iterfind(f"{_q('component')}/{_q('section')}"):
        _section(sub, box, level + 1, index)


def _sections(doc: etree._Element) -> Iterable[etree._Element]:
    return doc.iterfind(f"{_q('component')}/{_q('structuredBody')}/{_q('component')}/{_q('section')}")


# ------------------------------------------------------------------------------------------- main --
def _parse(xml: bytes) -> etree._Element:
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    try:
        root = etree.fromstring(xml, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise RenderError(f"not well-formed XML: {exc}") from None
    if has_doctype(root):
        raise RenderError("a document type declaration (DOCTYPE) is not allowed")  # XXE guard
    if root.tag != _q("ClinicalDocument"):
        raise RenderError("not a CDA document (root element is not hl7:ClinicalDocument)")
    return root


def render_html(xml: bytes) -> str:
    """Render a C-CDA document as a self-contained, script-free, accessible HTML page."""
    doc = _parse(xml)
    title = _words(doc.find(_q("title"))) or "Health summary"
    language = doc.find(_q("languageCode"))
    lang = (language.get("code") if language is not None else None) or "en"
    page = _el("html", lang=lang if re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", lang) else "en")
    head = _add(page, "head")
    _add(head, "meta", charset="utf-8")
    _add(head, "meta", http_equiv="Content-Security-Policy", content=CSP)
    _add(head, "meta", name="viewport", content="width=device-width, initial-scale=1")
    _add(head, "meta", name="referrer", content="no-referrer")
    _add(head, "title", title)
    _add(head, "style", _CSS)
    main = _add(_add(page, "body"), "main")
    _add(main, "h1", title)

    facts = _patient_facts(doc)
    box = _add(main, "section", class_="patient", aria_label="Patient")
    if facts:
        dl = _add(box, "dl")
        for label, value in facts:
            _add(dl, "dt", label)
            _add(dl, "dd", value)
    else:
        _add(box, "p", "No patient information", class_="empty")
    meta = []
    created = _date_of(doc.find(_q("effectiveTime")))
    if created:
        meta.append(f"Created {created}")
    source = _organization(doc, "v3:custodian/v3:assignedCustodian/v3:representedCustodianOrganization")
    if source:
        meta.append(f"from {source}")
    if meta:
        _add(box, "p", " ".join(meta), class_="meta")

    sections = list(_sections(doc))
    if sections:
        nav = _add(main, "nav", aria_label="Sections")
        links = _add(nav, "ul")
        body = _el("div")
        counter = [0]
        for section in sections:
            _section(section, body, 2, counter)
        for h2 in body.iterfind("section/h2"):
            _add(_add(links, "li"), "a", h2.text or "", href=f"#{h2.get('id')}")
        main.extend(list(body))
    elif doc.find(f"{_q('component')}/{_q('nonXMLBody')}") is not None:
        _add(main, "p", "This document holds an attachment that cannot be shown here.", class_="empty")
    else:
        _add(main, "p", "No information", class_="empty")
    html: str = lhtml.tostring(page, encoding="unicode", method="html")
    return "<!DOCTYPE html>\n" + html

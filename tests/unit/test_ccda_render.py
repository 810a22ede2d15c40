"""render_html: the patient-friendly preview of a C-CDA, checked on the C-CDA R2.1 IG's sample CCD."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from lxml import html as lhtml

from ccda_mapper.render import CSP, RenderError, human_date, render_html

DATA = Path(__file__).resolve().parent.parent / "data" / "ccda"
IG_CCD = DATA / "HL7_C-CDA_R2-1_CCD.xml"
V3 = "urn:hl7-org:v3"
NS = {"v3": V3}


@pytest.fixture(scope="module")
def page() -> lhtml.HtmlElement:
    return lhtml.document_fromstring(render_html(IG_CCD.read_bytes()))


def facts(page: lhtml.HtmlElement) -> dict[str, str]:
    dts = page.xpath("//section[@class='patient']//dt")
    return {dt.text_content(): dt.getnext().text_content() for dt in dts}


def test_patient_header(page: lhtml.HtmlElement) -> None:
    assert page.findtext(".//h1") == "Patient Chart Summary"
    assert facts(page) == {
        "Name": "Eve Betterhalf",
        "Date of birth": "May 1, 1975",
        "Sex": "Female",
        "Race": "White, Hawaiian or Other Pacific Islander",
        "Ethnicity": "Not Hispanic or Latino",
        "Language": "English (preferred)",
        "Address": "2222 Home Street, Beaverton, OR 97867, US",
        "Contact": "Phone (home): +1(555)555-2003",
    }
    assert page.xpath("string(//section[@class='patient']/p[@class='meta'])") == (
        "Created August 15, 2013 from Good Health HIE"
    )


def test_one_heading_and_table_per_section(page: lhtml.HtmlElement) -> None:
    doc = etree.parse(str(IG_CCD))
    titles = doc.xpath(
        "/v3:ClinicalDocument/v3:component/v3:structuredBody/v3:component/v3:section/v3:title", namespaces=NS
    )
    tables = doc.xpath("//v3:section/v3:text//v3:table", namespaces=NS)
    assert [h.text for h in page.iterfind(".//main/section/h2")] == [t.text for t in titles]
    assert len(page.findall(".//table")) == len(tables) == 13
    # navigation links point at the headings
    assert [a.get("href") for a in page.findall(".//nav//a")] == [
        f"#{h.get('id')}" for h in page.iterfind(".//h2")
    ]
    allergies = page.xpath("//section[h2='ALLERGIES AND ADVERSE REACTIONS']//table")[0]
    rows = [[" ".join(c.text_content().split()) for c in tr] for tr in allergies.iter("tr")]
    assert rows == [
        ["Substance", "Reaction"],
        ["Penicillin", "Mild Nausea"],
        ["Codeine", "Moderate Wheezing"],
    ]


def test_accessible_markup(page: lhtml.HtmlElement) -> None:
    assert page.get("lang") == "en-US"  # the document's languageCode
    assert all(th.get("scope") in ("col", "row") for th in page.iter("th"))
    assert all(th.get("scope") == "col" for th in page.xpath("//thead//th"))
    for region in page.xpath("//div[@class='scroll']"):
        assert region.get("role") == "region" and region.get("tabindex") == "0" and region.get("aria-label")
    for section in page.xpath("//main/section[@aria-labelledby]"):
        assert page.get_element_by_id(section.get("aria-labelledby")).tag == "h2"


def test_no_script_and_locked_down_page(page: lhtml.HtmlElement) -> None:
    assert page.xpath("//script|//iframe|//object|//embed|//img|//link|//*[@style]") == []
    assert not [a for el in page.iter() for a in el.attrib if a.lower().startswith("on")]
    assert page.xpath("string(//meta[@http-equiv='Content-Security-Policy']/@content)") == CSP
    assert page.xpath("string(//meta[@name='viewport']/@content)") == "width=device-width, initial-scale=1"


def hostile_document() -> bytes:
    root = etree.parse(str(IG_CCD)).getroot()
    root.find(f"{{{V3}}}title").text = "<b>Summary</b> & more"
    patient = root.find(f".//{{{V3}}}patient/{{{V3}}}name/{{{V3}}}given")
    patient.text = "Zoë <img src=x onerror=alert(1)>"
    cell = root.xpath("(//v3:section/v3:text//v3:td)[1]", namespaces=NS)[0]
    cell.text = "</td><script>alert(1)</script>"
    script = etree.SubElement(cell, f"{{{V3}}}script")
    script.text = "steal()"
    link = etree.SubElement(cell, f"{{{V3}}}linkHtml", href="javascript:alert(1)", onclick="x()")
    link.text = "click"
    ok_link = etree.SubElement(cell, f"{{{V3}}}linkHtml", href="https://example.org/a?b=1&c=2")
    ok_link.text = "info"
    foreign = etree.SubElement(cell, "{http://www.w3.org/1999/xhtml}iframe", src="https://evil.example")
    foreign.text = "framed"
    return etree.tostring(root)


def test_everything_is_escaped_and_nothing_runs() -> None:
    out = render_html(hostile_document())
    page = lhtml.document_fromstring(out)
    assert page.xpath("//script|//iframe|//img") == []
    assert "javascript:" not in out
    assert not [a for el in page.iter() for a in el.attrib if a.lower().startswith("on")]
    assert "&lt;img src=x onerror=alert(1)&gt;" in out  # shown as text, escaped
    assert page.findtext(".//h1") == "<b>Summary</b> & more"
    assert facts(page)["Name"] == "Zoë <img src=x onerror=alert(1)> Betterhalf"
    cell = page.xpath("(//main/section//td)[1]")[0]
    assert cell.text_content().startswith("</td><script>alert(1)</script>steal()click")
    assert "framed" not in cell.text_content()
    links = cell.findall(".//a")
    assert [(a.get("href"), a.get("rel")) for a in links] == [
        ("https://example.org/a?b=1&c=2", "noopener noreferrer nofollow")
    ]


def test_empty_and_null_flavored_sections_say_no_information() -> None:
    root = etree.parse(str(IG_CCD)).getroot()
    sections = root.xpath("//v3:structuredBody/v3:component/v3:section", namespaces=NS)
    sections[0].set("nullFlavor", "NI")
    sections[1].remove(sections[1].find(f"{{{V3}}}text"))
    page = lhtml.document_fromstring(render_html(etree.tostring(root)))
    shown = page.xpath("//main/section[h2]")
    for section in shown[:2]:
        assert section.xpath("string(p[@class='empty'])") == "No information"
        assert section.find(".//table") is None
    assert shown[2].find(".//table") is not None


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (b"{not xml", "not well-formed"),
        (b"<html/>", "not a CDA document"),
        (
            b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ClinicalDocument xmlns="urn:hl7-org:v3"/>',
            "DOCTYPE",
        ),
    ],
)
def test_rejects_what_is_not_a_cda(xml: bytes, reason: str) -> None:
    with pytest.raises(RenderError, match=reason):
        render_html(xml)


@pytest.mark.parametrize(
    ("ts", "shown"),
    [("20141015103026-0500", "October 15, 2014"), ("201410", "October 2014"), ("2014", "2014"), (None, None)],
)
def test_human_dates_keep_their_precision(ts: str | None, shown: str | None) -> None:
    assert human_date(ts) == shown


@pytest.mark.service("chromium")
def test_fits_a_360px_phone_screen(chromium) -> None:
    """In a real browser at 360 px the page never scrolls sideways: wide tables scroll inside their region."""
    tab = chromium.new_page(viewport={"width": 360, "height": 800})
    try:
        errors: list[str] = []
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.set_content(render_html(IG_CCD.read_bytes()))
        assert tab.evaluate("document.documentElement.scrollWidth") <= 360
        widths = tab.evaluate(
            "[...document.querySelectorAll('.scroll')].map(e => e.getBoundingClientRect().right)"
        )
        assert widths and max(widths) <= 360
        assert tab.evaluate("getComputedStyle(document.querySelector('.scroll')).overflowX") == "auto"
        assert errors == []
    finally:
        tab.close()

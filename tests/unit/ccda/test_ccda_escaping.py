"""Hostile strings stay data: the CCD is written as text (``ccda_mapper.xmltext``), so every value that reaches
an attribute, a narrative cell or an element's text must come out escaped, with XML-illegal characters
dropped, and the document must still validate."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from lxml import etree

from ccda_mapper import build, validate, xmltext
from ccda_mapper.safexml import safe_parser
from tests.unit.ccda.ccda_helpers import NOW, PATIENT, bundle

EVIL = "<b>&amp;\"quoted\" 'single' </td></tr><script>alert(1)</script>]]>\x01\x0b\x1f\ud800\ufffe\r\n\tend"
#: what survives: the same text without the characters XML 1.0 cannot carry (CR is kept as &#13;)
SURVIVES = "<b>&amp;\"quoted\" 'single' </td></tr><script>alert(1)</script>]]>\r\n\tend"
V3 = "{urn:hl7-org:v3}"


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": EVIL}], "text": EVIL}


def _hostile_record() -> dict[str, Any]:
    patient = {
        **PATIENT,
        "name": [{"use": "official", "family": EVIL, "given": [EVIL]}],
        "address": [{"line": [EVIL], "city": EVIL, "state": "MA", "postalCode": "02139"}],
        "telecom": [{"system": "email", "value": 'a"b@example.org'}],
        "identifier": [{"system": "urn:x-evil:" + EVIL, "value": EVIL}],
    }
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": _coding("http://snomed.info/sct", "44054006"),
        "onsetDateTime": "2020-01-01",
    }
    obs = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "subject": {"reference": "Patient/p1"},
        "code": _coding("http://loinc.org", "2345-7"),
        "effectiveDateTime": "2023-02-01T08:00:00Z",
        "valueString": EVIL,
        "referenceRange": [{"text": EVIL}],
    }
    note = {
        "resourceType": "DocumentReference",
        "id": "n1",
        "status": "current",
        "subject": {"reference": "Patient/p1"},
        "type": _coding("http://loinc.org", "11506-3"),
        "date": "2023-02-01T08:00:00Z",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "data": base64.b64encode(EVIL.encode("utf-8", "surrogatepass")).decode(),
                }
            }
        ],
    }
    return bundle(condition, obs, note, patient=patient)


def test_hostile_strings_are_escaped_and_the_document_validates() -> None:
    xml = build(_hostile_record(), now=NOW).xml
    assert b"<script" not in xml and b"<b>" not in xml  # never markup
    assert b"\x01" not in xml and b"\x1f" not in xml  # XML-illegal characters dropped
    root = etree.fromstring(xml, safe_parser())  # well-formed
    family = root.find(f".//{V3}patient/{V3}name/{V3}family")
    assert family is not None and family.text == SURVIVES
    texts = [td.text for td in root.iter(f"{V3}td") if td.text]
    assert SURVIVES in texts  # the result value in the Results table
    assert any(t.startswith(SURVIVES.strip()) for t in texts)  # the note text
    # attribute values: a display name with quotes and markup comes back as the same characters
    displays = {e.get("displayName") for e in root.iter(f"{V3}value", f"{V3}code") if e.get("displayName")}
    assert any(d and "<script>" in d and '"quoted"' in d and "\n\t" in d for d in displays)  # kept as data
    report = validate(xml)
    assert report.xsd_errors == [] and report.schematron_errors == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('a<b>&"c"\n\t\r', "a&lt;b&gt;&amp;&quot;c&quot;&#10;&#9;&#13;"),
        ("ok", "ok"),
        ("\x00\x08\ud83d\uffff x", " x"),
        ("é山", "é山"),
    ],
)
def test_attribute_escape(value: str, expected: str) -> None:
    assert xmltext.attr(value) == expected
    assert xmltext.attrs({"v": value}) == f' v="{expected}"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [('a<b>&"c"\n\t\r', 'a&lt;b&gt;&amp;"c"\n\t&#13;'), ("\x0c]]>", "]]&gt;")],
)
def test_text_escape(value: str, expected: str) -> None:
    assert xmltext.text(value) == expected
    assert xmltext.leaf("t", None, value) == f"<t>{expected}</t>"


def test_non_string_values_raise_like_lxml_did() -> None:
    with pytest.raises(TypeError):
        xmltext.attrs({"v": 3})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        xmltext.text(None)  # type: ignore[arg-type]

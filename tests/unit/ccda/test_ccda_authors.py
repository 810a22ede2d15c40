"""Author participations: a Practitioner referenced directly gets the provider taxonomy code of its
PractitionerRole in the input (CONF:1098-31671), and the document still validates."""

from __future__ import annotations

from ccda_mapper import validate
from tests.unit.ccda.ccda_helpers import NS, doc, section

PRAC = {
    "resourceType": "Practitioner",
    "id": "dr1",
    "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
    "name": [{"family": "Smith", "given": ["Ann"]}],
}
ROLE = {
    "resourceType": "PractitionerRole",
    "id": "role1",
    "practitioner": {"reference": "Practitioner/dr1"},
    "specialty": [
        {
            "coding": [
                {
                    "system": "http://nucc.org/provider-taxonomy",
                    "code": "208D00000X",
                    "display": "General Practice Physician",
                }
            ]
        }
    ],
}
CONDITION = {
    "resourceType": "Condition",
    "id": "c1",
    "subject": {"reference": "Patient/p1"},
    "clinicalStatus": {"coding": [{"code": "active"}]},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes"}]},
    "recordedDate": "2020-01-01",
    "recorder": {"reference": "Practitioner/dr1"},
}
PROBLEMS = "2.16.840.1.113883.10.20.22.2.5.1"
AUTHOR_CODE = ".//v3:author/v3:assignedAuthor/v3:code"


def test_practitioner_author_takes_the_taxonomy_code_of_its_role() -> None:
    root = doc(PRAC, ROLE, CONDITION)
    codes = section(root, PROBLEMS).xpath(AUTHOR_CODE, namespaces=NS)
    assert [(c.get("code"), c.get("codeSystem")) for c in codes] == [
        ("208D00000X", "2.16.840.1.113883.6.101")
    ]


def test_practitioner_without_role_has_no_code() -> None:
    root = doc(PRAC, CONDITION)
    assert section(root, PROBLEMS).xpath(AUTHOR_CODE, namespaces=NS) == []
    assert section(root, PROBLEMS).xpath(".//v3:author/v3:assignedAuthor/v3:id", namespaces=NS)


def test_document_with_role_code_validates() -> None:
    from lxml import etree

    report = validate(etree.tostring(doc(PRAC, ROLE, CONDITION)))
    assert report.xsd_errors == [] and report.schematron_errors == []

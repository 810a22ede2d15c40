"""Whole-document behaviour: header, input shapes, dirty data, determinism, XML safety, generated edge cases.

Edge-case documents are validated with the built-in XSD + Schematron validator: 0 errors is the bar.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

import pytest
from lxml import etree

from ccda_mapper import NoPatient, NotFhir, build, build_ccd, clinical_hash, validate
from ccda_mapper import datatypes as dt
from tests.unit.ccda.ccda_helpers import NOW, NS, PATIENT, bundle, section

V3 = "{urn:hl7-org:v3}"
SDTC = "{urn:hl7-org:sdtc}"
REQUIRED = {
    "2.16.840.1.113883.10.20.22.2.6.1": "Allergies",
    "2.16.840.1.113883.10.20.22.2.1.1": "Medications",
    "2.16.840.1.113883.10.20.22.2.5.1": "Problems",
    "2.16.840.1.113883.10.20.22.2.3.1": "Results",
    "2.16.840.1.113883.10.20.22.2.4.1": "Vital Signs",
    "2.16.840.1.113883.10.20.22.2.17": "Social History",
    "2.16.840.1.113883.10.20.22.2.7.1": "Procedures",
    "2.16.840.1.113883.10.20.22.2.2.1": "Immunizations",
    "2.16.840.1.113883.10.20.22.2.22.1": "Encounters",
    "2.16.840.1.113883.10.20.22.2.10": "Plan of Treatment",
}


def _root(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def _assert_valid(xml: bytes) -> None:
    report = validate(xml)
    assert report.ok, "\n".join(str(i) for i in report.errors[:10])


def _obs(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"o{i}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0", "display": "Glucose"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": f"2023-01-{1 + i % 28:02d}T08:00:00Z",
        "valueQuantity": {
            "value": 80 + i % 40,
            "unit": "mg/dL",
            "system": "http://unitsofmeasure.org",
            "code": "mg/dL",
        },
        **extra,
    }


# ------------------------------------------------------------------------------------------------ header --
def test_header_templates_ids_and_record_target() -> None:
    p = dict(
        PATIENT,
        extension=[
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2106-3",
                            "display": "White",
                        },
                    },
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2028-9",
                            "display": "Asian",
                        },
                    },
                    {
                        "url": "detailed",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2036-2",
                            "display": "Filipino",
                        },
                    },
                ],
            },
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2186-5",
                            "display": "Not Hispanic or Latino",
                        },
                    }
                ],
            },
        ],
        communication=[
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}, "preferred": True}
        ],
        address=[{"line": ["1 Main St"], "city": "Boston", "state": "MA", "postalCode": "02110"}],
        telecom=[{"system": "phone", "value": "555-123-4567", "use": "home"}],
        identifier=[{"system": "http://hospital.example.org/mrn", "value": "MRN1"}],
    )
    root = _root(build(bundle(patient=p), now=NOW).xml)
    templates = [(t.get("root"), t.get("extension")) for t in root.findall(f"{V3}templateId")]
    assert templates == [
        ("2.16.840.1.113883.10.20.22.1.1", "2015-08-01"),
        ("2.16.840.1.113883.10.20.22.1.1", None),
        ("2.16.840.1.113883.10.20.22.1.2", "2015-08-01"),
        ("2.16.840.1.113883.10.20.22.1.2", None),
    ]
    assert root.find(f"{V3}effectiveTime").get("value") == "20240301100000+0000"
    pat = root.find(f"{V3}recordTarget/{V3}patientRole/{V3}patient")
    assert pat.find(f"{V3}raceCode").get("code") == "2106-3"
    assert [e.get("code") for e in pat.findall(f"{SDTC}raceCode")] == ["2028-9", "2036-2"]
    assert pat.find(f"{V3}ethnicGroupCode").get("code") == "2186-5"
    assert pat.find(f"{V3}languageCommunication/{V3}languageCode").get("code") == "es"
    assert pat.find(f"{V3}birthTime").get("value") == "19800517"
    role = root.find(f"{V3}recordTarget/{V3}patientRole")
    assert role.find(f"{V3}telecom").get("value") == "tel:555-123-4567"
    assert role.find(f"{V3}addr/{V3}city").text == "Boston"
    _assert_valid(etree.tostring(root))


def test_deceased_patient() -> None:
    p = dict(PATIENT, deceasedDateTime="2018-03-04T05:06:07-05:00")
    xml = build(bundle(patient=p), now=NOW).xml
    pat = _root(xml).find(f"{V3}recordTarget/{V3}patientRole/{V3}patient")
    assert pat.find(f"{SDTC}deceasedInd").get("value") == "true"
    assert pat.find(f"{SDTC}deceasedTime").get("value") == "20180304050607-0500"
    _assert_valid(xml)


def test_author_and_custodian_from_caller() -> None:
    org = {
        "resourceType": "Organization",
        "id": "org1",
        "name": "Good Health Clinic",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
        "telecom": [{"system": "phone", "value": "555-000-1111"}, {"system": "fax", "value": "555-000-2222"}],
        "address": [{"line": ["2 Side St"], "city": "Boston", "state": "MA", "postalCode": "02110"}],
    }
    doctor = {
        "resourceType": "Practitioner",
        "id": "dr1",
        "name": [{"family": "House", "given": ["Greg"]}],
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999999991"}],
    }
    xml = build_ccd(bundle(org), author=doctor, custodian=org)
    root = _root(xml)
    rco = root.find(f"{V3}custodian/{V3}assignedCustodian/{V3}representedCustodianOrganization")
    assert rco.find(f"{V3}name").text == "Good Health Clinic"
    assert rco.find(f"{V3}id").get("root") == "2.16.840.1.113883.4.6"
    assert len(rco.findall(f"{V3}telecom")) == 1  # CONF:1198-5525
    aa = root.find(f"{V3}author/{V3}assignedAuthor")
    assert aa.find(f"{V3}assignedPerson/{V3}name/{V3}family").text == "House"
    _assert_valid(xml)


def test_care_team_members_are_service_event_performers() -> None:
    doctor = {"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Who", "given": ["John"]}]}
    team = {
        "resourceType": "CareTeam",
        "id": "t1",
        "subject": {"reference": "Patient/p1"},
        "participant": [{"member": {"reference": "Practitioner/dr1"}}],
    }
    root = _root(build(bundle(doctor, team), now=NOW).xml)
    perf = root.findall(f"{V3}documentationOf/{V3}serviceEvent/{V3}performer")
    assert [p.find(f".//{V3}family").text for p in perf] == ["Who"]


# ------------------------------------------------------------------------------------------- edge cases --
def test_minimal_patient_every_section_empty() -> None:
    xml = build({"resourceType": "Patient", "id": "only"}, now=NOW).xml
    root = _root(xml)
    for template_root in REQUIRED:
        sec = section(root, template_root)
        assert sec.get("nullFlavor") == "NI"
        assert sec.find(f"{V3}text").text == "No information"
        assert sec.find(f"{V3}entry") is None
    assert root.find(".//v3:patient/v3:name", NS).get("nullFlavor") == "UNK"
    _assert_valid(xml)


def test_unicode_and_markup_in_names_are_escaped() -> None:
    p = dict(
        PATIENT, name=[{"use": "official", "family": "Łukasz-Øster <script>&", "given": ["Zoë", "山田"]}]
    )
    xml = build(bundle(patient=p), now=NOW).xml
    assert b"<script>" not in xml
    name = _root(xml).find(".//v3:patient/v3:name", NS)
    assert [g.text for g in name.findall(f"{V3}given")] == ["Zoë", "山田"]
    assert name.find(f"{V3}family").text == "Łukasz-Øster <script>&"
    _assert_valid(xml)


def test_infant_with_growth_vitals() -> None:
    p = dict(PATIENT, birthDate="2024-01-10")
    weight = {
        "resourceType": "Observation",
        "id": "w1",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
        "effectiveDateTime": "2024-02-20T09:00:00Z",
        "valueQuantity": {"value": 4200, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"},
    }
    xml = build(bundle(weight, patient=p), now=NOW).xml
    value = section(_root(xml), "2.16.840.1.113883.10.20.22.2.4.1").find(f".//{V3}observation/{V3}value")
    assert (value.get("value"), value.get("unit")) == ("4200", "g")
    _assert_valid(xml)


def test_five_thousand_resources() -> None:
    obs = [_obs(i) for i in range(5000)]
    result = build(bundle(*obs), now=NOW)
    sec = section(_root(result.xml), "2.16.840.1.113883.10.20.22.2.3.1")
    assert len(sec.findall(f"{V3}entry")) == 5000
    assert len(sec.findall(f".//{V3}tbody/{V3}tr")) == 5000
    assert result.skipped == []


def test_references_that_do_not_resolve_are_skipped_with_a_reason() -> None:
    med = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/missing"},
    }
    lab = _obs(
        1,
        encounter={"reference": "Encounter/missing"},
        performer=[{"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|000"}],
    )
    result = build(bundle(med, lab), now=NOW)
    assert result.skipped == ["MedicationRequest/m1: no medication code or resolvable Medication"]
    root = _root(result.xml)
    assert section(root, "2.16.840.1.113883.10.20.22.2.1.1").get("nullFlavor") == "NI"
    assert len(section(root, "2.16.840.1.113883.10.20.22.2.3.1").findall(f"{V3}entry")) == 1
    _assert_valid(result.xml)


def test_dirty_resources_never_stop_the_document() -> None:
    bad = [
        {"resourceType": "Condition", "id": "c1", "code": "not-a-concept", "onsetDateTime": 12},
        {
            "resourceType": "Observation",
            "id": "o1",
            "code": {"coding": "nope"},
            "valueQuantity": {"value": "x"},
        },
        {"resourceType": "Immunization", "id": "i1", "vaccineCode": None, "occurrenceDateTime": "yesterday"},
        {"resourceType": "AllergyIntolerance", "id": "a1", "reaction": "bad", "category": "food"},
        {"resourceType": "Encounter", "id": "e1", "period": "2020", "type": [None, 5]},
        "not even an object",
        {"no": "resourceType"},
    ]
    result = build([PATIENT, *bad], now=NOW)
    assert "item 6: not a JSON object" in result.skipped  # the patient is item 0
    assert "item: no valid resourceType" in result.skipped
    _assert_valid(result.xml)


def test_conditional_and_urn_uuid_references_resolve() -> None:
    doctor = {
        "resourceType": "Practitioner",
        "id": "d1",
        "name": [{"family": "Cond", "given": ["Ref"]}],
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1112223334"}],
    }
    enc = {
        "resourceType": "Encounter",
        "status": "finished",
        "period": {"start": "2023-01-01T10:00:00Z"},
        "participant": [
            {"individual": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1112223334"}}
        ],
    }
    data = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111", "resource": PATIENT},
            {"fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222", "resource": enc},
            {"fullUrl": "urn:uuid:33333333-3333-3333-3333-333333333333", "resource": doctor},
        ],
    }
    sec = section(_root(build(data, now=NOW).xml), "2.16.840.1.113883.10.20.22.2.22.1")
    assert sec.find(f".//{V3}performer//{V3}family").text == "Cond"


# ---------------------------------------------------------------------------------------- input shapes --
def test_ndjson_and_resource_list_give_the_same_document() -> None:
    lab = _obs(3)
    ndjson = "\n".join(json.dumps(r) for r in (PATIENT, lab)).encode()
    assert build(ndjson, now=NOW).xml == build([PATIENT, lab], now=NOW).xml


@pytest.mark.parametrize(
    ("data", "exc"),
    [
        (b"", NotFhir),
        (b"<xml/>", NotFhir),
        (b'{"hello": "world"}', NotFhir),
        (b"[1, 2, 3]", NotFhir),
        (b"\xff\xfe\x00", NotFhir),
        (42, NotFhir),
        ({"resourceType": "Bundle", "type": "collection", "entry": []}, NoPatient),
        ({"resourceType": "Observation", "id": "x"}, NoPatient),
    ],
)
def test_input_that_is_not_a_patient_record_raises(data: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        build(data)


# ------------------------------------------------------------------------------------ determinism, hash --
def test_same_input_same_bytes_and_stable_ids() -> None:
    data = bundle(_obs(1), _obs(2))
    first, second = build(copy.deepcopy(data)).xml, build(copy.deepcopy(data)).xml
    assert first == second
    root = _root(first)
    assert root.find(f"{V3}effectiveTime").get("value") == "20230103080000+0000"  # newest date in the record
    ids = root.xpath("//v3:observation/v3:id/@root", namespaces=NS)
    assert ids == [dt.uid("Observation/o1"), dt.uid("Observation/o2")]


def test_clinical_hash_ignores_document_time_but_not_clinical_change() -> None:
    data = bundle(_obs(1))
    a = build(data, now="2024-01-01").xml
    b = build(data, now="2025-06-01").xml
    assert a != b
    assert clinical_hash(a) == clinical_hash(b)
    changed = bundle(
        _obs(
            1,
            valueQuantity={
                "value": 140,
                "unit": "mg/dL",
                "system": "http://unitsofmeasure.org",
                "code": "mg/dL",
            },
        )
    )
    assert clinical_hash(build(changed, now="2024-01-01").xml) != clinical_hash(a)


def test_clinical_hash_covers_the_patients_demographics() -> None:
    """A moved patient (new address) is news for an *always* recipient: the header's recordTarget counts."""
    data = bundle(_obs(1))
    moved = bundle(
        _obs(1),
        patient={
            **PATIENT,
            "address": [{"line": ["1 Main St"], "city": "Springfield", "postalCode": "62704"}],
        },
    )
    a = build(data, now="2024-01-01").xml
    assert clinical_hash(build(moved, now="2024-01-01").xml) != clinical_hash(a)
    assert clinical_hash(build(data, now="2025-01-01").xml) == clinical_hash(a)


def test_clinical_hash_refuses_documents_with_a_dtd(tmp_path: Any) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    evil = (
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]>'
        '<ClinicalDocument xmlns="urn:hl7-org:v3"><component><structuredBody><component><section>'
        "<title>&e;</title></section></component></structuredBody></component></ClinicalDocument>"
    ).encode()
    with pytest.raises(ValueError, match="DOCTYPE"):
        clinical_hash(evil)


def test_claims_come_back_as_a_separate_bundle() -> None:
    cov = {
        "resourceType": "Coverage",
        "id": "cov1",
        "status": "active",
        "beneficiary": {"reference": "Patient/p1"},
        "payor": [{"reference": "Organization/ins"}],
        "subscriberId": "MEMBER-1",
        "relationship": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}
            ]
        },
        "type": {
            "coding": [
                {"system": "https://nahdo.org/sopt", "code": "5", "display": "PRIVATE HEALTH INSURANCE"}
            ]
        },
    }
    ins = {"resourceType": "Organization", "id": "ins", "name": "Acme Insurance"}
    eob = {
        "resourceType": "ExplanationOfBenefit",
        "id": "eob1",
        "status": "active",
        "patient": {"reference": "Patient/p1"},
        "insurer": {"reference": "Organization/ins"},
        "insurance": [{"coverage": {"reference": "Coverage/cov1"}}],
    }
    result = build(bundle(cov, ins, eob), now=NOW)
    claims = result.claims_bundle
    assert claims is not None and claims["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in claims["entry"]]
    assert kinds == ["Patient", "ExplanationOfBenefit", "Organization", "Coverage"]
    payers = section(_root(result.xml), "2.16.840.1.113883.10.20.22.2.18")
    assert payers.find(".//v3:participantRole/v3:id", NS).get("extension") == "MEMBER-1"
    assert payers.find(".//v3:performer//v3:representedOrganization/v3:name", NS).text == "Acme Insurance"
    _assert_valid(result.xml)
    assert build(bundle(cov, ins), now=NOW).claims_bundle is None


def test_every_optional_section_from_one_record_validates() -> None:
    """One record that fills every section this mapper knows, validated as a whole."""
    R = json.loads(_ALL_SECTIONS)
    xml = build(bundle(*R), now=NOW).xml
    root = _root(xml)
    for template_root in (
        "2.16.840.1.113883.10.20.22.2.60",
        "2.16.840.1.113883.10.20.22.2.58",
        "2.16.840.1.113883.10.20.22.2.14",
        "2.16.840.1.113883.10.20.22.2.56",
        "2.16.840.1.113883.10.20.22.2.23",
        "2.16.840.1.113883.10.20.22.2.65",
        "2.16.840.1.113883.10.20.22.2.8",
        "1.3.6.1.4.1.19376.1.5.3.1.3.1",
    ):
        assert section(root, template_root).find(f".//{V3}tbody/{V3}tr") is not None
    device = section(root, "2.16.840.1.113883.10.20.22.2.23")
    assert device.find(".//v3:participantRole/v3:id", NS).get("root") == "2.16.840.1.113883.3.3719"
    note = section(root, "2.16.840.1.113883.10.20.22.2.65")
    assert "Patient doing well." in "".join(note.itertext())
    _assert_valid(xml)
    # every entry-level text/reference points at an ID that exists in the narrative
    ids = set(root.xpath("//@ID"))
    refs = {r[1:] for r in root.xpath("//v3:reference/@value", namespaces=NS)}
    assert refs <= ids


_ALL_SECTIONS = re.sub(
    r"\s+",
    " ",
    """[
 {"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active", "subject": {"reference": "Patient/p1"},
  "description": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic BP"}]},
  "startDate": "2023-01-01",
  "target": [{"detailQuantity": {"value": 130, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org",
   "code": "mm[Hg]"}, "dueDate": "2023-12-31"}]},
 {"resourceType": "Condition", "id": "hc1", "subject": {"reference": "Patient/p1"},
  "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/condition-category",
   "code": "health-concern"}]}],
  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "161888002", "display": "Food insecurity"}]},
  "recordedDate": "2023-02-01"},
 {"resourceType": "Observation", "id": "f1", "status": "final", "subject": {"reference": "Patient/p1"},
  "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-category",
   "code": "functional-status"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "75246-9", "display": "Mobility"}]},
  "effectiveDateTime": "2023-02-01",
  "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "165245003",
   "display": "Independent"}]}},
 {"resourceType": "Observation", "id": "cog1", "status": "final", "subject": {"reference": "Patient/p1"},
  "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-category",
   "code": "cognitive-status"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "72107-6", "display": "MMSE"}]},
  "effectiveDateTime": "2023-02-01",
  "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "386806002",
   "display": "Impaired cognition"}]}},
 {"resourceType": "Device", "id": "dev1", "patient": {"reference": "Patient/p1"}, "status": "active",
  "udiCarrier": [{"deviceIdentifier": "09504000059118",
   "carrierHRF": "(01)09504000059118(17)141120(10)7654321D(21)10987654d321"}],
  "type": {"coding": [{"system": "http://snomed.info/sct", "code": "14106009", "display": "Cardiac pacemaker"}]}},
 {"resourceType": "DocumentReference", "id": "n1", "status": "current", "subject": {"reference": "Patient/p1"},
  "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]},
  "date": "2023-02-01T10:00:00Z",
  "content": [{"attachment": {"contentType": "text/plain", "data": "UGF0aWVudCBkb2luZyB3ZWxsLg=="}}]},
 {"resourceType": "ClinicalImpression", "id": "ci1", "status": "completed", "subject": {"reference": "Patient/p1"},
  "summary": "Stable.", "date": "2023-02-01"},
 {"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
  "subject": {"reference": "Patient/p1"},
  "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}]}],
  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "306206005", "display": "Referral to service"}]},
  "reasonCode": [{"text": "Cardiology follow-up"}], "authoredOn": "2023-02-01"},
 {"resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan", "subject": {"reference": "Patient/p1"},
  "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "698360004", "display": "Diabetes care plan"}]}],
  "period": {"start": "2023-01-01"},
  "activity": [{"detail": {"status": "in-progress", "code": {"coding": [{"system": "http://snomed.info/sct",
   "code": "160670007", "display": "Diabetic diet"}]}}}]}
]""",
)


def test_report_text_goes_to_notes_once() -> None:
    text = base64.b64encode(b"Chest X-ray: no acute findings.").decode()
    dr = {
        "resourceType": "DiagnosticReport",
        "id": "dr1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4", "display": "Imaging study"}]},
        "effectiveDateTime": "2023-03-03T10:00:00Z",
        "presentedForm": [{"contentType": "text/plain", "data": text}],
    }
    result = build(bundle(dr), now=NOW)
    assert result.skipped == [
        "DiagnosticReport/dr1: report text only: in the Notes section (once if a DocumentReference has the same text)"
    ]
    notes = section(_root(result.xml), "2.16.840.1.113883.10.20.22.2.65")
    assert "Chest X-ray: no acute findings." in "".join(notes.itertext())
    # the same text also carried by a DocumentReference is sent once
    ref = {
        "resourceType": "DocumentReference",
        "id": "n1",
        "status": "current",
        "date": "2023-03-03",
        "content": [{"attachment": {"contentType": "text/plain", "data": text}}],
    }
    notes = section(_root(build(bundle(dr, ref), now=NOW).xml), "2.16.840.1.113883.10.20.22.2.65")
    assert len(notes.findall(f"{V3}entry")) == 1


def test_software_author_and_datetime_now() -> None:
    import datetime as _dt

    when = _dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=_dt.UTC)
    root = _root(build(bundle(), author="Clinic Portal 2.0", now=when).xml)
    assert root.find(f"{V3}effectiveTime").get("value") == "20240506070809+0000"
    dev = root.find(f"{V3}author/{V3}assignedAuthor/{V3}assignedAuthoringDevice")
    assert dev.find(f"{V3}softwareName").text == "Clinic Portal 2.0"
    # a device author acts for an organization (CONF:1198-8456): the custodian, here the fallback holder
    org = root.find(f"{V3}author/{V3}assignedAuthor/{V3}representedOrganization/{V3}name")
    assert org.text == "Blue Button Direct"

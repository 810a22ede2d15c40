"""Section mappers on small hand-written FHIR inputs, compared with the exact XML each must produce.

The expected XML below was checked line by line against the C-CDA R2.1 templates (templateIds with the R1.1
companions, codes, statusCodes, narrative references); ids are the stable UUIDs derived from resource keys.
"""

from __future__ import annotations

import copy

import pytest

from ccda_mapper import datatypes as dt
from tests.unit.ccda.ccda_helpers import doc, section, squash, xml_of

V3 = "{urn:hl7-org:v3}"


def _observation_category(code: str) -> list[dict]:
    """An Observation.category naming one code of the observation-category CodeSystem (US Core)."""
    return [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code}]}
    ]


ALLERGY = {
    "resourceType": "AllergyIntolerance",
    "id": "a1",
    "clinicalStatus": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}
        ]
    },
    "category": ["medication"],
    "type": "allergy",
    "criticality": "high",
    "code": {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "7980",
                "display": "Penicillin G",
            }
        ],
        "text": "Penicillin G",
    },
    "patient": {"reference": "Patient/p1"},
    "onsetDateTime": "2010-01-02",
    "recordedDate": "2010-01-05",
    "reaction": [
        {
            "manifestation": [
                {"coding": [{"system": "http://snomed.info/sct", "code": "247472004", "display": "Hives"}]}
            ],
            "severity": "moderate",
        }
    ],
}
R: dict = {
    "problem": {
        "resourceType": "Condition",
        "id": "c1",
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "44054006",
                    "display": "Diabetes mellitus type 2",
                },
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"},
            ],
            "text": "Type 2 diabetes",
        },
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2015-06-01",
        "recordedDate": "2015-06-03",
    },
    "med": {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2020-02-02",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "860975",
                    "display": "metformin 500 MG Oral Tablet",
                }
            ]
        },
        "dosageInstruction": [
            {
                "text": "1 tablet twice a day",
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": 1,
                            "unit": "tablet",
                            "system": "http://unitsofmeasure.org",
                            "code": "{tbl}",
                        }
                    }
                ],
            }
        ],
    },
    "imm": {
        "resourceType": "Immunization",
        "id": "i1",
        "status": "completed",
        "patient": {"reference": "Patient/p1"},
        "occurrenceDateTime": "2021-10-01T09:30:00-04:00",
        "vaccineCode": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/cvx",
                    "code": "140",
                    "display": "Influenza, seasonal, injectable, preservative free",
                }
            ]
        },
        "lotNumber": "LOT-9",
    },
    "lab": {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "category": _observation_category("laboratory"),
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "2339-0", "display": "Glucose [Mass/volume] in Blood"}
            ]
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2023-01-05T08:00:00+00:00",
        "valueQuantity": {
            "value": 95,
            "unit": "mg/dL",
            "system": "http://unitsofmeasure.org",
            "code": "mg/dL",
        },
        "referenceRange": [
            {
                "low": {"value": 70, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
                "high": {
                    "value": 99,
                    "unit": "mg/dL",
                    "system": "http://unitsofmeasure.org",
                    "code": "mg/dL",
                },
            }
        ],
    },
    "vital": {
        "resourceType": "Observation",
        "id": "v1",
        "status": "final",
        "category": _observation_category("vital-signs"),
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2023-01-05T08:00:00+00:00",
        "component": [
            {
                "code": {
                    "coding": [
                        {"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}
                    ]
                },
                "valueQuantity": {
                    "value": 120,
                    "unit": "mm[Hg]",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            },
            {
                "code": {
                    "coding": [
                        {
                            "system": "http://loinc.org",
                            "code": "8462-4",
                            "display": "Diastolic blood pressure",
                        }
                    ]
                },
                "valueQuantity": {
                    "value": 80,
                    "unit": "mm[Hg]",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            },
        ],
    },
    "smoke": {
        "resourceType": "Observation",
        "id": "s1",
        "status": "final",
        "category": _observation_category("social-history"),
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "72166-2", "display": "Tobacco smoking status"}]
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2023-01-05",
        "valueCodeableConcept": {
            "coding": [{"system": "http://snomed.info/sct", "code": "8517006", "display": "Ex-smoker"}]
        },
    },
    "proc": {
        "resourceType": "Procedure",
        "id": "pr1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "code": {
            "coding": [{"system": "http://snomed.info/sct", "code": "73761001", "display": "Colonoscopy"}]
        },
        "performedPeriod": {"start": "2019-04-01T10:00:00Z", "end": "2019-04-01T11:00:00Z"},
    },
    "enc": {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [
            {
                "coding": [
                    {"system": "http://www.ama-assn.org/go/cpt", "code": "99213", "display": "Office visit"}
                ]
            }
        ],
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2023-01-05T07:45:00Z", "end": "2023-01-05T08:30:00Z"},
        "reasonCode": [
            {"coding": [{"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}]}
        ],
    },
}

EXPECTED_ALLERGY = f"""
<entry typeCode="DRIV">
  <act classCode="ACT" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.30" extension="2015-08-01"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.30"/>
    <id root="{dt.uid("AllergyIntolerance/a1#concern")}"/>
    <code code="CONC" codeSystem="2.16.840.1.113883.5.6" codeSystemName="HL7ActClass" displayName="Concern"/>
    <statusCode code="active"/>
    <effectiveTime><low value="20100105"/></effectiveTime>
    <entryRelationship typeCode="SUBJ">
      <observation classCode="OBS" moodCode="EVN">
        <templateId root="2.16.840.1.113883.10.20.22.4.7" extension="2014-06-09"/>
        <templateId root="2.16.840.1.113883.10.20.22.4.7"/>
        <id root="{dt.uid("AllergyIntolerance/a1")}"/>
        <code code="ASSERTION" codeSystem="2.16.840.1.113883.5.4" codeSystemName="ActCode" displayName="Assertion"/>
        <text><reference value="#allergy1"/></text>
        <statusCode code="completed"/>
        <effectiveTime><low value="20100102"/></effectiveTime>
        <value xsi:type="CD" code="416098002" displayName="Allergy to drug" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT"/>
        <participant typeCode="CSM">
          <participantRole classCode="MANU">
            <playingEntity classCode="MMAT">
              <code code="7980" codeSystem="2.16.840.1.113883.6.88" codeSystemName="RxNorm" displayName="Penicillin G">
                <originalText><reference value="#allergy1"/></originalText>
              </code>
            </playingEntity>
          </participantRole>
        </participant>
        <entryRelationship typeCode="MFST" inversionInd="true">
          <observation classCode="OBS" moodCode="EVN">
            <templateId root="2.16.840.1.113883.10.20.22.4.9" extension="2014-06-09"/>
            <templateId root="2.16.840.1.113883.10.20.22.4.9"/>
            <id root="{dt.uid("AllergyIntolerance/a1#reaction0.0")}"/>
            <code code="ASSERTION" codeSystem="2.16.840.1.113883.5.4" codeSystemName="ActCode" displayName="Assertion"/>
            <text><reference value="#allergy1r1"/></text>
            <statusCode code="completed"/>
            <value xsi:type="CD" code="247472004" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Hives">
              <originalText>Hives</originalText>
            </value>
            <entryRelationship typeCode="SUBJ" inversionInd="true">
              <observation classCode="OBS" moodCode="EVN">
                <templateId root="2.16.840.1.113883.10.20.22.4.8" extension="2014-06-09"/>
                <templateId root="2.16.840.1.113883.10.20.22.4.8"/>
                <code code="SEV" codeSystem="2.16.840.1.113883.5.4" codeSystemName="ActCode" displayName="Severity Observation"/>
                <statusCode code="completed"/>
                <value xsi:type="CD" code="6736007" displayName="Moderate" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT"/>
              </observation>
            </entryRelationship>
          </observation>
        </entryRelationship>
        <entryRelationship typeCode="SUBJ" inversionInd="true">
          <observation classCode="OBS" moodCode="EVN">
            <templateId root="2.16.840.1.113883.10.20.22.4.145"/>
            <code code="82606-5" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Criticality"/>
            <statusCode code="completed"/>
            <value xsi:type="CD" code="CRITH" displayName="High Criticality" codeSystem="2.16.840.1.113883.5.1063" codeSystemName="HL7ObservationValue"/>
          </observation>
        </entryRelationship>
      </observation>
    </entryRelationship>
  </act>
</entry>
"""

EXPECTED_PROBLEM = """
<entry typeCode="DRIV">
  <act classCode="ACT" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.3" extension="2015-08-01"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.3"/>
    <id root="a5c758de-e0fe-5cd2-9c37-51a913f6f34d"/>
    <code code="CONC" codeSystem="2.16.840.1.113883.5.6" codeSystemName="HL7ActClass" displayName="Concern"/>
    <statusCode code="active"/>
    <effectiveTime>
      <low value="20150603"/>
    </effectiveTime>
    <entryRelationship typeCode="SUBJ">
      <observation classCode="OBS" moodCode="EVN">
        <templateId root="2.16.840.1.113883.10.20.22.4.4" extension="2015-08-01"/>
        <templateId root="2.16.840.1.113883.10.20.22.4.4"/>
        <id root="d19985e4-85b8-54fd-a23d-d6a55e5f6343"/>
        <code code="55607006" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Problem">
          <translation code="75326-9" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Problem"/>
        </code>
        <text>
          <reference value="#problem1"/>
        </text>
        <statusCode code="completed"/>
        <effectiveTime>
          <low value="20150601"/>
        </effectiveTime>
        <value xsi:type="CD" code="44054006" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Diabetes mellitus type 2">
          <originalText>
            <reference value="#problem1"/>
          </originalText>
          <translation code="E11.9" codeSystem="2.16.840.1.113883.6.90" codeSystemName="ICD-10-CM"/>
        </value>
      </observation>
    </entryRelationship>
  </act>
</entry>
"""

EXPECTED_MEDICATION = """
<entry typeCode="DRIV">
  <substanceAdministration classCode="SBADM" moodCode="INT">
    <templateId root="2.16.840.1.113883.10.20.22.4.16" extension="2014-06-09"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.16"/>
    <id root="d54fe20d-2cc9-58ca-a8ab-aadf2dc2e8e2"/>
    <text>
      <reference value="#med1"/>
    </text>
    <statusCode code="active"/>
    <effectiveTime xsi:type="IVL_TS">
      <low value="20200202"/>
    </effectiveTime>
    <effectiveTime xsi:type="PIVL_TS" institutionSpecified="true" operator="A">
      <period value="12" unit="h"/>
    </effectiveTime>
    <doseQuantity value="1" unit="{tbl}"/>
    <consumable>
      <manufacturedProduct classCode="MANU">
        <templateId root="2.16.840.1.113883.10.20.22.4.23" extension="2014-06-09"/>
        <templateId root="2.16.840.1.113883.10.20.22.4.23"/>
        <manufacturedMaterial>
          <code code="860975" codeSystem="2.16.840.1.113883.6.88" codeSystemName="RxNorm" displayName="metformin 500 MG Oral Tablet">
            <originalText>
              <reference value="#med1"/>
            </originalText>
          </code>
        </manufacturedMaterial>
      </manufacturedProduct>
    </consumable>
  </substanceAdministration>
</entry>
"""

EXPECTED_IMMUNIZATION = """
<entry typeCode="DRIV">
  <substanceAdministration classCode="SBADM" moodCode="EVN" negationInd="false">
    <templateId root="2.16.840.1.113883.10.20.22.4.52" extension="2015-08-01"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.52"/>
    <id root="41ca1aad-af79-594f-a0c2-8bf44ecfaa0c"/>
    <text>
      <reference value="#immunization1"/>
    </text>
    <statusCode code="completed"/>
    <effectiveTime value="20211001093000-0400"/>
    <consumable>
      <manufacturedProduct classCode="MANU">
        <templateId root="2.16.840.1.113883.10.20.22.4.54" extension="2014-06-09"/>
        <templateId root="2.16.840.1.113883.10.20.22.4.54"/>
        <manufacturedMaterial>
          <code code="140" codeSystem="2.16.840.1.113883.12.292" codeSystemName="CVX" displayName="Influenza, seasonal, injectable, preservative free">
            <originalText>
              <reference value="#immunization1"/>
            </originalText>
          </code>
          <lotNumberText>LOT-9</lotNumberText>
        </manufacturedMaterial>
      </manufacturedProduct>
    </consumable>
  </substanceAdministration>
</entry>
"""

EXPECTED_RESULT = """
<entry typeCode="DRIV">
  <organizer classCode="CLUSTER" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.1" extension="2015-08-01"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.1"/>
    <id root="fc0c1ad7-f616-59a1-a503-b9ff699406a9"/>
    <code code="2339-0" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Glucose [Mass/volume] in Blood">
      <originalText>Glucose [Mass/volume] in Blood</originalText>
    </code>
    <statusCode code="completed"/>
    <effectiveTime>
      <low value="20230105080000+0000"/>
      <high value="20230105080000+0000"/>
    </effectiveTime>
    <component>
      <observation classCode="OBS" moodCode="EVN">
        <templateId root="2.16.840.1.113883.10.20.22.4.2" extension="2015-08-01"/>
        <templateId root="2.16.840.1.113883.10.20.22.4.2"/>
        <id root="a6ef595d-4d42-5163-aab8-285396bdb9a7"/>
        <code code="2339-0" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Glucose [Mass/volume] in Blood">
          <originalText>
            <reference value="#result1"/>
          </originalText>
        </code>
        <text>
          <reference value="#result1"/>
        </text>
        <statusCode code="completed"/>
        <effectiveTime value="20230105080000+0000"/>
        <value xsi:type="PQ" value="95" unit="mg/dL"/>
        <referenceRange>
          <observationRange>
            <text>70 mg/dL - 99 mg/dL</text>
            <value xsi:type="IVL_PQ">
              <low value="70" unit="mg/dL"/>
              <high value="99" unit="mg/dL"/>
            </value>
          </observationRange>
        </referenceRange>
      </observation>
    </component>
  </organizer>
</entry>
"""

EXPECTED_VITAL_SIGNS = """
<entry typeCode="DRIV">
  <organizer classCode="CLUSTER" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.26" extension="2015-08-01"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.26"/>
    <id root="6e6e9076-a31a-5f2e-81d7-f8012b6991ca"/>
    <code code="46680005" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Vital Signs">
      <translation code="74728-7" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Vital signs, weight, height, head circumference, oximetry, BMI, and BSA panel"/>
    </code>
    <statusCode code="completed"/>
    <effectiveTime value="20230105080000+0000"/>
    <component>
      <observation classCode="OBS" moodCode="EVN">
        <templateId root="2.16.840.1.113883.10.20.22.4.27" extension="2014-06-09"/>
        <templateId root="2.16.840.1.113883.10.20.22.4.27"/>
        <id root="d06c6484-39c1-5582-a582-f4d6fcbd6a4b"/>
        <code code="8480-6" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Systolic blood pressure">
          <originalText>
            <reference value="#vital1"/>
          </originalText>
        </code>
        <text>
          <reference value="#vital1"/>
        </text>
        <statusCode code="completed"/>
        <effectiveTime value="20230105080000+0000"/>
        <value xsi:type="PQ" value="120" unit="mm[Hg]"/>
      </observation>
    </component>
    <component>
      <observation classCode="OBS" moodCode="EVN">
        <templateId root="2.16.840.1.113883.10.20.22.4.27" extension="2014-06-09"/>
        <templateId root="2.16.840.1.113883.10.20.22.4.27"/>
        <id root="fd61f61c-8dfc-5bb9-90b6-9bbaca08d189"/>
        <code code="8462-4" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Diastolic blood pressure">
          <originalText>
            <reference value="#vital2"/>
          </originalText>
        </code>
        <text>
          <reference value="#vital2"/>
        </text>
        <statusCode code="completed"/>
        <effectiveTime value="20230105080000+0000"/>
        <value xsi:type="PQ" value="80" unit="mm[Hg]"/>
      </observation>
    </component>
  </organizer>
</entry>
"""

EXPECTED_SMOKING_STATUS = """
<entry typeCode="DRIV">
  <observation classCode="OBS" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.78" extension="2014-06-09"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.78"/>
    <id root="3592e817-8f6b-5ed5-b5de-522c1aab4bb6"/>
    <code code="72166-2" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Tobacco smoking status"/>
    <text>
      <reference value="#social1"/>
    </text>
    <statusCode code="completed"/>
    <effectiveTime value="20230105"/>
    <value xsi:type="CD" code="8517006" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Ex-smoker">
      <originalText>Ex-smoker</originalText>
    </value>
  </observation>
</entry>
"""

EXPECTED_PROCEDURE = """
<entry typeCode="DRIV">
  <procedure classCode="PROC" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.14" extension="2014-06-09"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.14"/>
    <id root="a722db49-1290-5ea4-9113-e821fa22982f"/>
    <code code="73761001" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Colonoscopy">
      <originalText>
        <reference value="#procedure1"/>
      </originalText>
    </code>
    <text>
      <reference value="#procedure1"/>
    </text>
    <statusCode code="completed"/>
    <effectiveTime>
      <low value="20190401100000+0000"/>
      <high value="20190401110000+0000"/>
    </effectiveTime>
  </procedure>
</entry>
"""

EXPECTED_ENCOUNTER = """
<entry typeCode="DRIV">
  <encounter classCode="ENC" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.49" extension="2015-08-01"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.49"/>
    <id root="d125c9e4-b8e4-5b6b-abb5-e8322c84cb2b"/>
    <code code="99213" codeSystem="2.16.840.1.113883.6.12" codeSystemName="CPT-4" displayName="Office visit">
      <originalText>
        <reference value="#encounter1"/>
      </originalText>
    </code>
    <text>
      <reference value="#encounter1"/>
    </text>
    <effectiveTime>
      <low value="20230105074500+0000"/>
      <high value="20230105083000+0000"/>
    </effectiveTime>
    <entryRelationship typeCode="RSON">
      <observation classCode="OBS" moodCode="EVN">
        <templateId root="2.16.840.1.113883.10.20.22.4.19" extension="2014-06-09"/>
        <templateId root="2.16.840.1.113883.10.20.22.4.19"/>
        <id root="faf6e3dd-b28a-5463-adac-3cbf1136fecc"/>
        <code code="404684003" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Clinical finding"/>
        <statusCode code="completed"/>
        <effectiveTime>
          <low value="20230105074500+0000"/>
        </effectiveTime>
        <value xsi:type="CD" code="38341003" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Hypertension">
          <originalText>Hypertension</originalText>
        </value>
      </observation>
    </entryRelationship>
  </encounter>
</entry>
"""


def _entry(resource: dict, template_root: str, n: int = 0) -> str:
    sec = section(doc(resource), template_root)
    return xml_of(sec.findall(f"{V3}entry")[n])


@pytest.mark.parametrize(
    ("resource", "template_root", "expected"),
    [
        pytest.param(ALLERGY, "2.16.840.1.113883.10.20.22.2.6.1", EXPECTED_ALLERGY, id="allergy"),
        pytest.param(R["problem"], "2.16.840.1.113883.10.20.22.2.5.1", EXPECTED_PROBLEM, id="problem"),
        pytest.param(R["med"], "2.16.840.1.113883.10.20.22.2.1.1", EXPECTED_MEDICATION, id="medication"),
        pytest.param(R["imm"], "2.16.840.1.113883.10.20.22.2.2.1", EXPECTED_IMMUNIZATION, id="immunization"),
        pytest.param(R["lab"], "2.16.840.1.113883.10.20.22.2.3.1", EXPECTED_RESULT, id="result"),
        pytest.param(R["vital"], "2.16.840.1.113883.10.20.22.2.4.1", EXPECTED_VITAL_SIGNS, id="vital_signs"),
        pytest.param(
            R["smoke"], "2.16.840.1.113883.10.20.22.2.17", EXPECTED_SMOKING_STATUS, id="smoking_status"
        ),
        pytest.param(R["proc"], "2.16.840.1.113883.10.20.22.2.7.1", EXPECTED_PROCEDURE, id="procedure"),
        pytest.param(R["enc"], "2.16.840.1.113883.10.20.22.2.22.1", EXPECTED_ENCOUNTER, id="encounter"),
    ],
)
def test_first_entry_exact(resource: dict, template_root: str, expected: str) -> None:
    assert _entry(resource, template_root) == squash(expected)


def test_allergy_narrative_row_has_the_ids_entries_point_to() -> None:
    sec = section(doc(ALLERGY), "2.16.840.1.113883.10.20.22.2.6.1")
    cells = [(td.get("ID"), td.text) for td in sec.iter(f"{V3}td")]
    assert cells == [
        ("allergy1", "Penicillin G"),
        ("allergy1r1", "Hives"),
        (None, "moderate"),
        (None, "high"),
        (None, "active"),
        (None, "2010-01-02"),
    ]


def test_resolved_problem_is_a_completed_concern_with_high() -> None:
    res = copy.deepcopy(R["problem"])
    res["clinicalStatus"]["coding"][0]["code"] = "resolved"
    res["abatementDateTime"] = "2019-01-01"
    xml = _entry(res, "2.16.840.1.113883.10.20.22.2.5.1")
    assert (
        '<statusCode code="completed"/><effectiveTime><low value="20150603"/><high value="20190101"/>' in xml
    )
    assert '<effectiveTime><low value="20150601"/><high value="20190101"/></effectiveTime>' in xml


def test_medication_reference_resolves_contained_medication() -> None:
    res = copy.deepcopy(R["med"])
    concept = res.pop("medicationCodeableConcept")
    res["contained"] = [{"resourceType": "Medication", "id": "med", "code": concept}]
    res["medicationReference"] = {"reference": "#med"}
    assert 'code="860975" codeSystem="2.16.840.1.113883.6.88"' in _entry(
        res, "2.16.840.1.113883.10.20.22.2.1.1"
    )


def test_refused_immunization_is_negated() -> None:
    res = dict(R["imm"], status="not-done")
    assert 'negationInd="true"' in _entry(res, "2.16.840.1.113883.10.20.22.2.2.1")


def test_unknown_code_system_is_kept_as_translation_with_original_text() -> None:
    res = copy.deepcopy(R["lab"])
    res["code"] = {
        "coding": [
            {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.696580", "code": "GLU"},
            {"system": "http://example.org/labcodes", "code": "G-1", "display": "Glucose"},
        ],
        "text": "Glucose (local)",
    }
    obs = section(doc(res), "2.16.840.1.113883.10.20.22.2.3.1").find(f".//{V3}observation")
    code = obs.find(f"{V3}code")
    assert code.get("code") == "GLU" and code.get("codeSystem") == "1.2.840.114350.1.13.0.1.7.2.696580"
    tr = code.find(f"{V3}translation")
    assert tr.get("code") == "G-1" and tr.get("codeSystemName") == "http://example.org/labcodes"
    assert tr.get("codeSystem").startswith("2.25.")


def test_coding_without_any_known_system_gets_nullflavor_oth() -> None:
    res = copy.deepcopy(R["lab"])
    res["code"] = {"coding": [{"system": "http://example.org/labcodes", "code": "G-1"}], "text": "Glucose"}
    code = section(doc(res), "2.16.840.1.113883.10.20.22.2.3.1").find(f".//{V3}observation/{V3}code")
    assert code.get("nullFlavor") == "OTH"
    assert code.find(f"{V3}translation").get("code") == "G-1"

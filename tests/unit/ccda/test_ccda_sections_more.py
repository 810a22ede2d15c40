"""Goals, Health Concerns, Medical Equipment, Notes, Plan of Treatment, Functional/Mental Status and Payers:
the exact entry each section mapper writes for the hand-written record of ``test_ccda_document._ALL_SECTIONS``
plus one Coverage (checked against the C-CDA R2.1 / Companion Guide templates)."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from tests.unit.ccda.ccda_helpers import doc, section, squash, xml_of
from tests.unit.ccda.test_ccda_document import _ALL_SECTIONS

V3 = "{urn:hl7-org:v3}"
COVERAGE = {
    "resourceType": "Coverage",
    "id": "cov1",
    "status": "active",
    "beneficiary": {"reference": "Patient/p1"},
    "payor": [{"reference": "Organization/ins"}],
    "subscriberId": "MEMBER-1",
    "period": {"start": "2023-01-01"},
    "relationship": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}
        ]
    },
    "type": {
        "coding": [{"system": "https://nahdo.org/sopt", "code": "5", "display": "PRIVATE HEALTH INSURANCE"}]
    },
}
PAYOR = {"resourceType": "Organization", "id": "ins", "name": "Acme Insurance"}

CASES = {
    "2.16.840.1.113883.10.20.22.2.60": """
<entry typeCode="DRIV">
  <observation classCode="OBS" moodCode="GOL">
    <templateId root="2.16.840.1.113883.10.20.22.4.121"/>
    <id root="9f42b540-ccb7-56fa-b9f0-1a6704568233"/>
    <code code="8480-6" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Systolic BP">
      <originalText>
        <reference value="#goal1"/>
      </originalText>
    </code>
    <text>
      <reference value="#goal1"/>
    </text>
    <statusCode code="active"/>
    <effectiveTime>
      <low value="20230101"/>
      <high value="20231231"/>
    </effectiveTime>
    <value xsi:type="PQ" value="130" unit="mm[Hg]"/>
  </observation>
</entry>
""",
    "2.16.840.1.113883.10.20.22.2.58": """
<entry typeCode="DRIV">
  <act classCode="ACT" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.132" extension="2015-08-01"/>
    <id root="93457558-f10d-54df-abc1-10e340eabc2c"/>
    <code code="75310-3" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Health concern"/>
    <text>
      <reference value="#concern1"/>
    </text>
    <statusCode code="active"/>
    <effectiveTime>
      <low value="20230201"/>
    </effectiveTime>
    <entryRelationship typeCode="REFR">
      <observation classCode="OBS" moodCode="EVN">
        <templateId root="2.16.840.1.113883.10.20.22.4.4" extension="2015-08-01"/>
        <templateId root="2.16.840.1.113883.10.20.22.4.4"/>
        <id root="7588cdd3-7064-5a1c-84f8-63cf9a3edb2c"/>
        <code code="55607006" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Problem">
          <translation code="75326-9" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Problem"/>
        </code>
        <text>
          <reference value="#concern1"/>
        </text>
        <statusCode code="completed"/>
        <effectiveTime>
          <low value="20230201"/>
        </effectiveTime>
        <value xsi:type="CD" code="161888002" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Food insecurity">
          <originalText>
            <reference value="#concern1"/>
          </originalText>
        </value>
      </observation>
    </entryRelationship>
  </act>
</entry>
""",
    "2.16.840.1.113883.10.20.22.2.23": """
<entry typeCode="DRIV">
  <supply classCode="SPLY" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.50" extension="2014-06-09"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.50"/>
    <id root="da951fe7-cfd3-57f4-8df0-e6460b73d789"/>
    <text>
      <reference value="#device1"/>
    </text>
    <statusCode code="active"/>
    <effectiveTime nullFlavor="UNK"/>
    <participant typeCode="PRD">
      <participantRole classCode="MANU">
        <templateId root="2.16.840.1.113883.10.20.22.4.37"/>
        <id root="2.16.840.1.113883.3.3719" extension="(01)09504000059118(17)141120(10)7654321D(21)10987654d321"/>
        <playingDevice>
          <code code="14106009" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Cardiac pacemaker">
            <originalText>
              <reference value="#device1"/>
            </originalText>
          </code>
        </playingDevice>
        <scopingEntity>
          <id root="2.16.840.1.113883.3.3719"/>
        </scopingEntity>
      </participantRole>
    </participant>
  </supply>
</entry>
""",
    "2.16.840.1.113883.10.20.22.2.65": """
<entry typeCode="DRIV">
  <act classCode="ACT" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.202" extension="2016-11-01"/>
    <id root="cfed4a44-84d7-5dfe-8719-cc823875f38e"/>
    <code code="34109-9" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Note">
      <translation code="11506-3" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Progress note"/>
    </code>
    <text>
      <reference value="#note1"/>
    </text>
    <statusCode code="completed"/>
    <effectiveTime value="20230201100000+0000"/>
  </act>
</entry>
""",
    "2.16.840.1.113883.10.20.22.2.10": """
<entry typeCode="DRIV">
  <act classCode="ACT" moodCode="INT">
    <templateId root="2.16.840.1.113883.10.20.22.4.39" extension="2014-06-09"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.39"/>
    <id root="a4309576-7e2b-5a27-be08-dcc3568614cc"/>
    <code code="160670007" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Diabetic diet">
      <originalText>
        <reference value="#plan1"/>
      </originalText>
    </code>
    <text>
      <reference value="#plan1"/>
    </text>
    <statusCode code="active"/>
    <effectiveTime value="20230101"/>
  </act>
</entry>
""",
    "2.16.840.1.113883.10.20.22.2.14": """
<entry typeCode="DRIV">
  <observation classCode="OBS" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.67" extension="2014-06-09"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.67"/>
    <id root="dede5487-c844-589b-abb4-fde270fc48b0"/>
    <code code="75246-9" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Mobility">
      <originalText>
        <reference value="#functional1"/>
      </originalText>
    </code>
    <text>
      <reference value="#functional1"/>
    </text>
    <statusCode code="completed"/>
    <effectiveTime>
      <low value="20230201"/>
    </effectiveTime>
    <value xsi:type="CD" code="165245003" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Independent">
      <originalText>Independent</originalText>
    </value>
  </observation>
</entry>
""",
    "2.16.840.1.113883.10.20.22.2.56": """
<entry typeCode="DRIV">
  <observation classCode="OBS" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.74" extension="2015-08-01"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.74"/>
    <id root="e9a7b302-6ef8-5409-b7fd-fd596aef2cef"/>
    <code code="373930000" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Cognitive function">
      <translation code="75275-8" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Cognitive function"/>
    </code>
    <text>
      <reference value="#mental1"/>
    </text>
    <statusCode code="completed"/>
    <effectiveTime>
      <low value="20230201"/>
    </effectiveTime>
    <value xsi:type="CD" code="386806002" codeSystem="2.16.840.1.113883.6.96" codeSystemName="SNOMED CT" displayName="Impaired cognition">
      <originalText>Impaired cognition</originalText>
    </value>
  </observation>
</entry>
""",
    "2.16.840.1.113883.10.20.22.2.18": """
<entry typeCode="DRIV">
  <act classCode="ACT" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.60" extension="2015-08-01"/>
    <templateId root="2.16.840.1.113883.10.20.22.4.60"/>
    <id root="c0d8706e-6ac4-56c5-86a7-e5bef3e92fa3"/>
    <code code="48768-6" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Payment sources"/>
    <statusCode code="completed"/>
    <entryRelationship typeCode="COMP">
      <sequenceNumber value="1"/>
      <act classCode="ACT" moodCode="EVN">
        <templateId root="2.16.840.1.113883.10.20.22.4.61" extension="2015-08-01"/>
        <templateId root="2.16.840.1.113883.10.20.22.4.61"/>
        <id root="a2f4a27c-e65f-5a86-b6cd-249c50f61397"/>
        <code code="5" codeSystem="2.16.840.1.113883.3.221.5" codeSystemName="Source of Payment Typology" displayName="PRIVATE HEALTH INSURANCE">
          <originalText>
            <reference value="#payer1"/>
          </originalText>
          <translation nullFlavor="NI"/>
        </code>
        <text>
          <reference value="#payer1"/>
        </text>
        <statusCode code="completed"/>
        <performer typeCode="PRF">
          <templateId root="2.16.840.1.113883.10.20.22.4.87"/>
          <assignedEntity>
            <id root="05e08e75-bf11-56da-ba64-0861ce388cfa"/>
            <code code="PAYOR" codeSystem="2.16.840.1.113883.5.110" codeSystemName="HL7 RoleClassRelationship" displayName="invoice payor"/>
            <representedOrganization>
              <name>Acme Insurance</name>
            </representedOrganization>
          </assignedEntity>
        </performer>
        <participant typeCode="COV">
          <templateId root="2.16.840.1.113883.10.20.22.4.89" extension="2015-08-01"/>
          <time>
            <low value="20230101"/>
          </time>
          <participantRole>
            <id root="48cb5226-fe39-5e78-9be6-a69f9618af1f" extension="MEMBER-1"/>
            <code code="SELF" displayName="self" codeSystem="2.16.840.1.113883.5.111" codeSystemName="RoleCode"/>
          </participantRole>
        </participant>
        <entryRelationship typeCode="REFR">
          <act classCode="ACT" moodCode="DEF">
            <id root="2e02ed56-e28f-586a-aec0-d9da5de098f7"/>
            <code nullFlavor="UNK"/>
            <text>PRIVATE HEALTH INSURANCE</text>
            <statusCode code="active"/>
          </act>
        </entryRelationship>
      </act>
    </entryRelationship>
  </act>
</entry>
""",
}


@pytest.fixture(scope="module")
def root() -> etree._Element:
    return doc(*json.loads(_ALL_SECTIONS), COVERAGE, PAYOR)


@pytest.mark.parametrize("template_root", list(CASES))
def test_first_entry_exact(root: etree._Element, template_root: str) -> None:
    entry = section(root, template_root).find(f"{V3}entry")
    assert xml_of(entry) == squash(CASES[template_root])

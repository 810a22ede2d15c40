"""The one code-system table of the mapper: FHIR system URI <-> HL7 OID <-> display name.

FHIR identifies code systems by URI, CDA by OID (CDA R2 ``CD.codeSystem`` is an ``uid``).  Every mapper asks
this module, so a system is spelled the same way everywhere in the document.  A system that is not in the
table is never dropped: :func:`oid_for` derives a stable OID under the ``2.25`` (UUID) arc from its URI (ITU-T
X.667 §6.3), so the coding can still travel as a ``translation`` whose ``codeSystemName`` keeps the URI.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from typing import NamedTuple


class CodeSystem(NamedTuple):
    uri: str
    oid: str
    name: str


LOINC = "2.16.840.1.113883.6.1"
SNOMED = "2.16.840.1.113883.6.96"
RXNORM = "2.16.840.1.113883.6.88"
CVX = "2.16.840.1.113883.12.292"
NDC = "2.16.840.1.113883.6.69"
UCUM = "2.16.840.1.113883.6.8"
ICD10CM = "2.16.840.1.113883.6.90"
ICD9CM = "2.16.840.1.113883.6.103"
CPT = "2.16.840.1.113883.6.12"
HCPCS = "2.16.840.1.113883.6.285"
CDCREC = "2.16.840.1.113883.6.238"
NUCC = "2.16.840.1.113883.6.101"
NPI = "2.16.840.1.113883.4.6"
SSN = "2.16.840.1.113883.4.1"
ACT_CODE = "2.16.840.1.113883.5.4"
ACT_CLASS = "2.16.840.1.113883.5.6"
ACT_STATUS = "2.16.840.1.113883.5.14"
ADMIN_GENDER = "2.16.840.1.113883.5.1"
MARITAL = "2.16.840.1.113883.5.2"
INTERPRETATION = "2.16.840.1.113883.5.83"
ROUTE = "2.16.840.1.113883.3.26.1.1"
PARTICIPATION = "2.16.840.1.113883.5.90"
ROLE_CODE = "2.16.840.1.113883.5.111"
NULL_FLAVOR = "2.16.840.1.113883.5.1008"
CONFIDENTIALITY = "2.16.840.1.113883.5.25"
SOP = "2.16.840.1.113883.3.221.5"
PAYER_TYPE = "2.16.840.1.113883.6.255.1336"
RELIGION = "2.16.840.1.113883.5.1076"
LANGUAGE = "2.16.840.1.113883.6.121"

_TABLE: tuple[CodeSystem, ...] = (
    CodeSystem("http://loinc.org", LOINC, "LOINC"),
    CodeSystem("http://snomed.info/sct", SNOMED, "SNOMED CT"),
    CodeSystem("http://www.nlm.nih.gov/research/umls/rxnorm", RXNORM, "RxNorm"),
    CodeSystem("http://hl7.org/fhir/sid/cvx", CVX, "CVX"),
    CodeSystem("http://hl7.org/fhir/sid/ndc", NDC, "NDC"),
    CodeSystem("http://unitsofmeasure.org", UCUM, "UCUM"),
    CodeSystem("http://hl7.org/fhir/sid/icd-10-cm", ICD10CM, "ICD-10-CM"),
    CodeSystem("http://hl7.org/fhir/sid/icd-10", "2.16.840.1.113883.6.3", "ICD-10"),
    CodeSystem("http://hl7.org/fhir/sid/icd-9-cm", ICD9CM, "ICD-9-CM"),
    CodeSystem("http://www.ama-assn.org/go/cpt", CPT, "CPT-4"),
    CodeSystem("https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", HCPCS, "HCPCS"),
    CodeSystem("http://www.cms.gov/Medicare/Coding/ICD10", "2.16.840.1.113883.6.4", "ICD-10-PCS"),
    CodeSystem("urn:oid:2.16.840.1.113883.6.238", CDCREC, "Race & Ethnicity - CDC"),
    CodeSystem("http://nucc.org/provider-taxonomy", NUCC, "NUCC Health Care Provider Taxonomy"),
    CodeSystem("urn:ietf:bcp:47", LANGUAGE, "Tags for the Identification of Languages"),
    CodeSystem("http://hl7.org/fhir/sid/us-npi", NPI, "National Provider Identifier"),
    CodeSystem("http://hl7.org/fhir/sid/us-ssn", SSN, "US Social Security Number"),
    CodeSystem("http://hl7.org/fhir/sid/us-medicare", "2.16.840.1.113883.4.572", "Medicare"),
    CodeSystem("http://fdasis.nlm.nih.gov", "2.16.840.1.113883.4.9", "UNII"),
    CodeSystem("http://terminology.hl7.org/CodeSystem/v3-ActCode", ACT_CODE, "HL7 ActCode"),
    CodeSystem("http://terminology.hl7.org/CodeSystem/v3-ActClass", ACT_CLASS, "HL7 ActClass"),
    CodeSystem("http://terminology.hl7.org/CodeSystem/v3-ActStatus", ACT_STATUS, "HL7 ActStatus"),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender", ADMIN_GENDER, "AdministrativeGender"
    ),
    CodeSystem("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", MARITAL, "MaritalStatus"),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
        INTERPRETATION,
        "ObservationInterpretation",
    ),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", PARTICIPATION, "ParticipationType"
    ),
    CodeSystem("http://terminology.hl7.org/CodeSystem/v3-RoleCode", ROLE_CODE, "RoleCode"),
    CodeSystem("http://terminology.hl7.org/CodeSystem/v3-NullFlavor", NULL_FLAVOR, "NullFlavor"),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", CONFIDENTIALITY, "Confidentiality"
    ),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/v3-ReligiousAffiliation", RELIGION, "ReligiousAffiliation"
    ),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration",
        "2.16.840.1.113883.5.112",
        "RouteOfAdministration",
    ),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/v3-ActPriority", "2.16.840.1.113883.5.7", "ActPriority"
    ),
    CodeSystem("http://terminology.hl7.org/CodeSystem/v3-ActEncounterCode", ACT_CODE, "HL7 ActCode"),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/v3-EntityNamePartQualifier",
        "2.16.840.1.113883.5.43",
        "EntityNamePartQualifier",
    ),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/v2-0203", "2.16.840.1.113883.18.108", "HL7 v2 Identifier Type"
    ),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/v2-0131", "2.16.840.1.113883.12.131", "HL7 v2 Contact Role"
    ),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/v2-0078", "2.16.840.1.113883.12.78", "HL7 v2 Abnormal Flags"
    ),
    CodeSystem("http://ncimeta.nci.nih.gov", "2.16.840.1.113883.3.26.1.1", "NCI Thesaurus"),
    CodeSystem("http://ncithesaurus.nci.nih.gov", "2.16.840.1.113883.3.26.1.1", "NCI Thesaurus"),
    CodeSystem("https://nahdo.org/sopt", SOP, "Source of Payment Typology"),
    CodeSystem("http://www.nubc.org/patient-discharge", "2.16.840.1.113883.6.301.5", "NUBC UB-04 FL17"),
    CodeSystem("http://www.ada.org/cdt", "2.16.840.1.113883.6.13", "CDT"),
    CodeSystem("http://hl7.org/fhir/sid/ex-icd-10-procedures", "2.16.840.1.113883.6.4", "ICD-10-PCS"),
    CodeSystem(
        "http://terminology.hl7.org/CodeSystem/data-absent-reason",
        "2.16.840.1.113883.4.642.4.1048",
        "DataAbsentReason",
    ),
)

_BY_URI: dict[str, CodeSystem] = {}
_BY_OID: dict[str, CodeSystem] = {}
for _cs in _TABLE:
    _BY_URI.setdefault(_cs.uri, _cs)
    _BY_OID.setdefault(_cs.oid, _cs)
# spellings seen in the wild for the same systems
_ALIASES = {
    "http://hl7.org/fhir/sid/icd-10-cm/": ICD10CM,
    "http://www.icd10data.com/icd10pcs": "2.16.840.1.113883.6.4",
    "http://snomed.info/sct/": SNOMED,
    "http://loinc.org/": LOINC,
    "http://www.nlm.nih.gov/research/umls/rxnorm/": RXNORM,
    "http://ama-assn.org/go/cpt": CPT,
    "http://www.ama-assn.org/go/cpt/": CPT,
    "https://www.cms.gov/medicare/coding/hcpcsreleasecodesets": HCPCS,
    "http://unitsofmeasure.org/": UCUM,
    "https://www.usps.com/": "2.16.840.1.113883.6.92",
}
for _uri, _oid in _ALIASES.items():
    _BY_URI.setdefault(_uri, _BY_OID[_oid] if _oid in _BY_OID else CodeSystem(_uri, _oid, _uri))

_OID_RE = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_oid(text: str) -> bool:
    return bool(_OID_RE.match(text))


def known(system: str | None) -> CodeSystem | None:
    """The table row for a FHIR system URI (``urn:oid:`` forms included); None when unknown."""
    if not system:
        return None
    row = _BY_URI.get(system)
    if row is not None:
        return row
    if system.startswith("urn:oid:"):
        return _BY_OID.get(system[8:])
    return None


@functools.lru_cache(maxsize=4096)
def oid_for(system: str) -> str:
    """The OID for a FHIR system: from the table, from ``urn:oid:``, or else a stable ``2.25.<uuid5>``
    (memoised: a record uses a handful of systems thousands of times, and uuid5 is not cheap)."""
    row = known(system)
    if row is not None:
        return row.oid
    if system.startswith("urn:oid:") and is_oid(system[8:]):
        return system[8:]
    if system.startswith("urn:uuid:") and _UUID_RE.match(system[9:]):
        return "2.25." + str(uuid.UUID(system[9:]).int)
    if is_oid(system):
        return system
    # uuid.uuid5 by hand: the same value for every valid string, and no crash on a lone surrogate (dirty
    # JSON can carry one) — "surrogatepass" only changes what strict UTF-8 would have refused
    digest = hashlib.sha1(
        uuid.NAMESPACE_URL.bytes + system.encode("utf-8", "surrogatepass"), usedforsecurity=False
    )
    return "2.25." + str(uuid.UUID(bytes=digest.digest()[:16], version=5).int)


def name_for(oid: str) -> str | None:
    row = _BY_OID.get(oid)
    return row.name if row else None


def uri_for(oid: str) -> str:
    """The FHIR URI for an OID (``urn:oid:`` when the table does not know it)."""
    row = _BY_OID.get(oid)
    return row.uri if row else f"urn:oid:{oid}"


# Identifier systems: same table, with NPI and SSN; OID-less systems get the derived 2.25 OID.
identifier_root = oid_for

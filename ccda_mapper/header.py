"""CCD header: US Realm Header (2.16.840.1.113883.10.20.22.1.1:2015-08-01) + CCD (…22.1.2:2015-08-01).

recordTarget (names, sex, birth, deceased, race/ethnicity with CDC detailed codes, language, address,
telecom), author (the caller's, else this software as an authoring device), custodian (the data holder) and
documentationOf/serviceEvent with the care team as performers.
"""

from __future__ import annotations

from typing import Any

from . import codes
from . import datatypes as dt
from .context import Ctx, practitioner_entity
from .index import Resource

_Element = dt.Node
_GENDER = {"male": ("M", "Male"), "female": ("F", "Female"), "other": ("UN", "Undifferentiated")}
_RACE_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
_ETH_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
SOFTWARE = "Blue Button Direct ccda_mapper"


def header(root: _Element, ctx: Ctx, doc_id: str, *, author: Any = None, custodian: Any = None) -> None:
    dt.leaf(root, "realmCode", {"code": "US"})
    dt.leaf(root, "typeId", {"root": "2.16.840.1.113883.1.3", "extension": "POCD_HD000040"})
    dt.template(root, "2.16.840.1.113883.10.20.22.1.1", "2015-08-01")
    dt.template(root, "2.16.840.1.113883.10.20.22.1.2", "2015-08-01")
    dt.leaf(root, "id", {"root": doc_id})
    dt.simple_code_leaf(root, "code", "34133-9", codes.LOINC, "Summarization of Episode Note", "LOINC")
    dt.leaf(root, "title", text="Continuity of Care Document")
    dt.leaf(root, "effectiveTime", {"value": ctx.now})
    dt.simple_code_leaf(root, "confidentialityCode", "N", codes.CONFIDENTIALITY, "normal", "Confidentiality")
    dt.leaf(root, "languageCode", {"code": "en-US"})
    dt.leaf(root, "setId", {"root": dt.uid(ctx.index.key(ctx.index.patient) + "#ccd-set")})
    dt.leaf(root, "versionNumber", {"value": "1"})
    record_target(root, ctx)
    org = _custodian_org(ctx, custodian) or FALLBACK_ORG
    _author(root, ctx, author, org)
    _custodian(root, ctx, org)
    _service_event(root, ctx)


# ------------------------------------------------------------------------------------------ recordTarget --
def record_target(root: _Element, ctx: Ctx) -> None:
    p = ctx.index.patient
    pr = dt.el(dt.el(root, "recordTarget"), "patientRole")
    dt.identifiers(pr, p, ctx.index.key(p))
    addresses = [a for a in dt.lst(p.get("address")) if isinstance(a, dict)]
    current = [a for a in addresses if a.get("use") != "old" and not dt.obj(a.get("period")).get("end")]
    dt.addrs(pr, current or addresses)
    dt.telecom(pr, p.get("telecom"))
    pat = dt.el(pr, "patient")
    names = [n for n in dt.lst(p.get("name")) if isinstance(n, dict)]
    first = dt.best_name(names)
    dt.person_name(pat, first, patient=True)
    for n in names:
        if n is not first and n.get("use") == "nickname":
            dt.person_name(pat, n, patient=True)
    g = _GENDER.get(dt.str_or_none(p.get("gender")) or "")
    if g:
        dt.simple_code_leaf(
            pat, "administrativeGenderCode", g[0], codes.ADMIN_GENDER, g[1], "AdministrativeGender"
        )
    else:
        dt.leaf(pat, "administrativeGenderCode", {"nullFlavor": "UNK"})
    dt.ts_el(pat, "birthTime", p.get("birthDate"))
    dec_b, dec_t = p.get("deceasedBoolean"), p.get("deceasedDateTime")
    if dec_t is not None or dec_b is not None:
        dec = bool(dec_b) or dt.ts(dec_t) is not None
        dt.leaf(pat, "sdtc:deceasedInd", {"value": "true" if dec else "false"})
        if dt.ts(dec_t):
            dt.leaf(pat, "sdtc:deceasedTime", {"value": dt.ts(dec_t) or ""})
    ms = p.get("maritalStatus")
    if isinstance(ms, dict) and dt.first_code(ms, codes.MARITAL):
        dt.cd(pat, "maritalStatusCode", ms, prefer=(codes.MARITAL,), text=False)
    _race_eth(pat, p, _RACE_URL, "raceCode")
    _race_eth(pat, p, _ETH_URL, "ethnicGroupCode")
    _language(pat, p)
    mo = ctx.index.resolve(p.get("managingOrganization"), p)
    if mo is not None and mo.get("resourceType") == "Organization":
        _organization(pr, ctx, mo, "providerOrganization")


def _race_eth(pat: _Element, p: Resource, url: str, tag: str) -> None:
    """US Core race/ethnicity → raceCode/ethnicGroupCode (OMB category) + sdtc:raceCode/ethnicGroupCode for
    more categories and the detailed CDC codes (C-CDA R2.1 CONF:1198-7263, 1198-7264, 1198-31347)."""
    omb: list[dict[str, Any]] = []
    detailed: list[dict[str, Any]] = []
    for ext in dt.lst(p.get("extension")):
        if isinstance(ext, dict) and ext.get("url") == url:
            for sub in dt.lst(ext.get("extension")):
                if not isinstance(sub, dict) or not isinstance(sub.get("valueCoding"), dict):
                    continue
                c = sub["valueCoding"]
                if dt.code_value(c.get("code")) is None:
                    continue
                if sub.get("url") == "ombCategory":
                    omb.append(c)
                elif sub.get("url") == "detailed":
                    detailed.append(c)

    def attrs(c: dict[str, Any]) -> dict[str, str]:
        code = dt.code_value(c.get("code"))
        if code in ("ASKU", "UNK") or code is None:
            return {"nullFlavor": code or "UNK"}
        a = {"code": code, "codeSystem": codes.CDCREC, "codeSystemName": "CDC Race and Ethnicity"}
        if dt.clean(c.get("display")):
            a["displayName"] = dt.clean(c.get("display"))
        return a

    if not omb:
        dt.leaf(pat, tag, {"nullFlavor": "UNK"})
        return
    dt.leaf(pat, tag, attrs(omb[0]))
    for c in [*omb[1:], *detailed]:
        if c.get("code") in ("ASKU", "UNK"):
            continue
        dt.leaf(pat, f"sdtc:{tag}", attrs(c))


def _language(pat: _Element, p: Resource) -> None:
    comms = [c for c in dt.lst(p.get("communication")) if isinstance(c, dict)]
    comms.sort(key=lambda c: not c.get("preferred"))
    for c in comms:
        lang = dt.first_code(c.get("language"), codes.LANGUAGE)
        if not lang:
            continue
        lc = dt.el(pat, "languageCommunication")
        dt.leaf(lc, "languageCode", {"code": dt.clean(lang)})
        if isinstance(c.get("preferred"), bool):
            dt.leaf(lc, "preferenceInd", {"value": "true" if c["preferred"] else "false"})


# ------------------------------------------------------------------------------------ author, custodian --
def _custodian_org(ctx: Ctx, custodian: Any) -> Resource | None:
    if isinstance(custodian, dict) and custodian.get("resourceType") == "Organization":
        return custodian
    mo = ctx.index.resolve(ctx.index.patient.get("managingOrganization"), ctx.index.patient)
    if mo is not None and mo.get("resourceType") == "Organization":
        return mo
    orgs = ctx.index.of("Organization")
    return orgs[0] if orgs else None


#: Who holds the data when the input names no organization: the sidecar that sends it.
FALLBACK_ORG: Resource = {"resourceType": "Organization", "id": "bbdirect", "name": "Blue Button Direct"}


def _organization(parent: _Element, ctx: Ctx, org: Resource, tag: str) -> _Element:
    o = dt.el(parent, tag)
    dt.identifiers(o, org, ctx.index.key(org) if org.get("resourceType") else "custodian")
    dt.leaf(o, "name", text=dt.clean(org.get("name")) or "Unknown organization")
    dt.telecom(o, org.get("telecom"))
    address = org.get("address")
    addrs = address if isinstance(address, list) else []
    dt.addr(o, next((a for a in addrs if isinstance(a, dict)), None))
    return o


def _author(root: _Element, ctx: Ctx, author: Any, org: Resource) -> None:
    """The document author (CONF:1198-5444): a Practitioner given by the caller, else this software."""
    a = dt.el(root, "author")
    dt.leaf(a, "time", {"value": ctx.now})
    if isinstance(author, dict) and author.get("resourceType") in ("Practitioner", "PractitionerRole"):
        practitioner_entity(ctx, a, author, "assignedAuthor")
        return
    aa = dt.el(a, "assignedAuthor")
    name = author if isinstance(author, str) and author.strip() else SOFTWARE
    dt.leaf(aa, "id", {"root": dt.uid("author:" + name)})
    dt.addr(aa, next((x for x in dt.lst(org.get("address")) if isinstance(x, dict)), None))
    dt.telecom(aa, org.get("telecom"))
    dev = dt.el(aa, "assignedAuthoringDevice")
    dt.leaf(dev, "manufacturerModelName", text=dt.clean(name))
    dt.leaf(dev, "softwareName", text=dt.clean(name))
    # CONF:1198-8456: a device author SHALL come with the organization it acts for
    _organization(aa, ctx, org, "representedOrganization")


def _custodian(root: _Element, ctx: Ctx, org: Resource) -> None:
    """custodian/assignedCustodian/representedCustodianOrganization: id, name, telecom, addr
    (CONF:1198-5519..)."""
    rco = dt.el(dt.el(dt.el(root, "custodian"), "assignedCustodian"), "representedCustodianOrganization")
    dt.identifiers(rco, org, ctx.index.key(org) if org.get("resourceType") else "custodian")
    dt.leaf(rco, "name", text=dt.clean(org.get("name")) or "Unknown organization")
    dt.telecom(rco, org.get("telecom"), limit=1)  # CONF:1198-5525: exactly one telecom
    dt.addr(rco, next((a for a in dt.lst(org.get("address")) if isinstance(a, dict)), None))


# ------------------------------------------------------------------------------------------ serviceEvent --
def _service_event(root: _Element, ctx: Ctx, low: str | None = None) -> None:
    """documentationOf/serviceEvent PCPR (CCD CONF:1198-8452) spanning the record, care team as performers."""
    se = dt.el(dt.el(root, "documentationOf"), "serviceEvent", {"classCode": "PCPR"})
    eff = dt.el(se, "effectiveTime")
    birth = dt.ts(ctx.index.patient.get("birthDate"))
    dt.leaf(eff, "low", {"value": birth} if birth else {"nullFlavor": "UNK"})
    dt.leaf(eff, "high", {"value": ctx.now})
    seen: set[int] = set()
    members: list[Resource] = []
    for team in ctx.index.of("CareTeam"):
        for part in dt.lst(team.get("participant")):
            if isinstance(part, dict):
                m = ctx.index.resolve(part.get("member"), team)
                if m is not None and m.get("resourceType") in ("Practitioner", "PractitionerRole"):
                    members.append(m)
    for ref in dt.lst(ctx.index.patient.get("generalPractitioner")):
        m = ctx.index.resolve(ref, ctx.index.patient)
        if m is not None and m.get("resourceType") in ("Practitioner", "PractitionerRole"):
            members.append(m)
    for m in members:
        if id(m) in seen:
            continue
        seen.add(id(m))
        perf = dt.el(se, "performer", {"typeCode": "PRF"})
        practitioner_entity(ctx, perf, m, "assignedEntity")

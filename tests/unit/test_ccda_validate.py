"""The built-in C-CDA validator finds what the HL7 artefacts say it must, and nothing on official examples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from ccda_mapper import validation as v

DATA = Path(__file__).resolve().parent.parent / "data" / "ccda"
IG_CCD = DATA / "HL7_C-CDA_R2-1_CCD.xml"
SMALL_CCD = DATA / "HL7Ex_CCD_2.xml"
NS = {"cda": "urn:hl7-org:v3"}
PROBLEM_SECTION = "2.16.840.1.113883.10.20.22.2.5.1"
ALLERGY_SECTION = "2.16.840.1.113883.10.20.22.2.6.1"


def mutate(path: Path, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(path.read_bytes())
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def one(root: etree._Element, xpath: str) -> etree._Element:
    (node,) = root.xpath(xpath, namespaces=NS)
    return node


def drop(node: etree._Element) -> None:
    node.getparent().remove(node)


@pytest.fixture(scope="module")
def validator() -> v.Validator:
    return v.get_validator()


@pytest.mark.parametrize("path", [IG_CCD, SMALL_CCD], ids=lambda p: p.name)
def test_official_examples_have_no_errors(validator: v.Validator, path: Path) -> None:
    report = validator.validate(path.read_bytes())
    assert report.ok, [str(i) for i in report.errors]
    assert report.xsd_errors == [] and report.schematron_errors == []
    # the SHOULD rules are reported, not hidden
    assert report.schematron_warnings
    assert all(i.source == "schematron" and i.rule for i in report.schematron_warnings)


def test_erratum_is_applied_so_self_care_rule_does_not_fire(validator: v.Validator) -> None:
    assert validator.errata_applied == ["a-1098-28042"]
    report = validator.validate(IG_CCD.read_bytes())
    assert "a-1098-28042" not in {i.rule for i in report.schematron_errors}


def test_removed_required_header_element_is_an_xsd_error(validator: v.Validator) -> None:
    xml = mutate(IG_CCD, lambda r: drop(one(r, "cda:effectiveTime")))
    report = validator.validate(xml)
    assert not report.ok
    assert len(report.xsd_errors) == 1
    assert "effectiveTime" in report.xsd_errors[0].message
    assert report.xsd_errors[0].source == "xsd" and report.xsd_errors[0].line


def test_removed_section_code_breaks_the_shall_rules(validator: v.Validator) -> None:
    xml = mutate(
        IG_CCD, lambda r: drop(one(r, f"//cda:section[cda:templateId/@root='{PROBLEM_SECTION}']/cda:code"))
    )
    report = validator.validate(xml)
    assert report.xsd_errors == []
    rules = {i.rule for i in report.schematron_errors}
    assert {"a-1198-15407", "a-1198-15408"} <= rules  # Problem Section SHALL contain code 11450-4
    issue = next(i for i in report.schematron_errors if i.rule == "a-1198-15407")
    assert issue.location and issue.location.endswith("/section") and issue.line


def test_wrong_section_templateid_means_required_section_missing(validator: v.Validator) -> None:
    def retemplate(root: etree._Element) -> None:
        for node in root.xpath(f"//cda:templateId[@root='{ALLERGY_SECTION}']", namespaces=NS):
            node.set("root", ALLERGY_SECTION + "9")

    report = validator.validate(mutate(IG_CCD, retemplate))
    assert [i.rule for i in report.schematron_errors] == ["a-1198-30661"]  # CCD SHALL have Allergies
    assert "Allergies" in report.schematron_errors[0].message


def test_missing_r11_companion_templateid_is_an_error(validator: v.Validator) -> None:
    xml = mutate(
        IG_CCD,
        lambda r: drop(one(r, f"//cda:section/cda:templateId[@root='{PROBLEM_SECTION}'][not(@extension)]")),
    )
    report = validator.validate(xml)
    assert [i.rule for i in report.schematron_errors] == ["hasCompatibleR1.1TemplateId"]
    assert f"{PROBLEM_SECTION}:2015-08-01" in report.schematron_errors[0].message


def test_templateid_that_is_not_an_oid_is_an_xsd_error(validator: v.Validator) -> None:
    xml = mutate(SMALL_CCD, lambda r: one(r, "cda:templateId").set("root", "not an oid"))
    report = validator.validate(xml)
    assert len(report.xsd_errors) == 1 and "uid" in report.xsd_errors[0].message


def test_not_well_formed_is_reported_not_raised(validator: v.Validator) -> None:
    report = validator.validate(b"<ClinicalDocument xmlns='urn:hl7-org:v3'><title>x</ClinicalDocument>")
    assert not report.ok
    assert [i.source for i in report.xsd_errors] == ["xml"]
    assert report.schematron_errors == [] and report.schematron_warnings == []


def test_external_entities_are_never_read(validator: v.Validator, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-PHI")
    doc = SMALL_CCD.read_bytes().decode("utf-8")
    start = doc.index("<ClinicalDocument")
    hostile = (
        f'<?xml version="1.0"?>\n<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "{secret.as_uri()}">]>\n'
        + doc[start:].replace("<title>Summary of Patient Chart</title>", "<title>&x;</title>", 1)
    )
    report = validator.validate(hostile.encode("utf-8"))
    assert not report.ok
    assert any(i.source == "xml" and "DOCTYPE" in i.message for i in report.xsd_errors)
    assert "TOP-SECRET-PHI" not in repr(report.to_dict())


def test_report_serialises_for_json_output(validator: v.Validator) -> None:
    xml = mutate(
        IG_CCD,
        lambda r: drop(one(r, "cda:recordTarget/cda:patientRole/cda:patient/cda:administrativeGenderCode")),
    )
    data = validator.validate(xml).to_dict()
    assert data["ok"] is False
    assert [e["rule"] for e in data["schematron_errors"]] == ["a-1198-6394"]
    assert data["schematron_errors"][0]["source"] == "schematron"


def test_libxslt_fallback_gives_the_same_findings(validator: v.Validator) -> None:
    """Users without saxonche get the same answer from libxslt (slower)."""
    xml = mutate(SMALL_CCD, lambda r: one(r, "cda:templateId").set("root", "not an oid"))
    fallback = v.Validator(engine="libxslt")
    assert "libxslt" in fallback.engine
    a, b = validator.validate(xml), fallback.validate(xml)
    assert (a.xsd_errors, a.schematron_errors, a.schematron_warnings) == (
        b.xsd_errors,
        b.schematron_errors,
        b.schematron_warnings,
    )


def test_stylesheet_is_compiled_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(v.CACHE_ENV, str(tmp_path))
    first = v.compiled_stylesheet()
    assert first.parent == tmp_path and first.stat().st_size > 1_000_000
    mtime = first.stat().st_mtime_ns
    assert v.compiled_stylesheet() == first and first.stat().st_mtime_ns == mtime


def test_command_line_exit_status(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<oops")
    assert v.main([str(SMALL_CCD)]) == 0
    assert v.main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "valid: 0 XSD errors, 0 Schematron errors, 20 warnings" in out
    assert "not well-formed" in out


def test_package_level_contract(validator: v.Validator) -> None:
    """``ccda_mapper.validate(xml)`` works even after the submodule was imported (as it is here)."""
    import ccda_mapper

    report = ccda_mapper.validate(SMALL_CCD.read_bytes())
    assert isinstance(report, v.ValidationReport) and report.ok


def test_direct_stylesheet_reports_exactly_what_the_skeleton_does(validator: v.Validator) -> None:
    """The rule-context rewrite (``_select_rule_contexts``) only makes it faster: on a document breaking many
    rules, findings, order, locations and lines are those of the ISO skeleton's own stylesheet."""

    def break_several(root: etree._Element) -> None:
        drop(one(root, f"//cda:section[cda:templateId/@root='{PROBLEM_SECTION}']/cda:code"))
        drop(one(root, "cda:recordTarget/cda:patientRole/cda:patient/cda:administrativeGenderCode"))
        for node in root.xpath(f"//cda:templateId[@root='{ALLERGY_SECTION}']", namespaces=NS):
            node.set("root", ALLERGY_SECTION + "9")

    xml = mutate(IG_CCD, break_several)
    skeleton = v.Validator(direct=False)
    a, b = validator.validate(xml), skeleton.validate(xml)
    assert len(a.schematron_errors) >= 7 and len(a.schematron_warnings) > 40
    assert (a.schematron_errors, a.schematron_warnings) == (b.schematron_errors, b.schematron_warnings)

"""Every FHIR bundle in tests/data/fhir → a CCD with 0 XSD errors and 0 Schematron errors.

Warnings (SHOULD rules) are allowed, as in the ONC validator; their count per bundle is printed (``-s``) and
recorded in docs/ccda-mapping.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ccda_mapper import build, clinical_hash, validate

DATA = Path(__file__).resolve().parent.parent / "data" / "fhir"
BUNDLES = sorted(DATA.glob("*.json"))


def test_the_bundles_are_there() -> None:
    assert len(BUNDLES) >= 13


@pytest.mark.parametrize("path", BUNDLES, ids=[p.stem for p in BUNDLES])
def test_bundle_builds_a_valid_ccd(path: Path) -> None:
    data = json.loads(path.read_bytes())
    result = build(data)
    report = validate(result.xml)
    print(
        f"\n{path.stem}: {len(report.xsd_errors)} XSD errors, {len(report.schematron_errors)} Schematron errors, "
        f"{len(report.schematron_warnings)} warnings, {len(result.skipped)} skipped"
    )
    assert not report.xsd_errors, "\n".join(map(str, report.xsd_errors[:10]))
    assert not report.schematron_errors, "\n".join(map(str, report.schematron_errors[:10]))
    # same input, same bytes (stable ids, document time from the record)
    assert build(json.loads(path.read_bytes())).xml == result.xml
    assert len(clinical_hash(result.xml)) == 64
    # claims never go into the CCD; they come back as their own Bundle
    eobs = [
        e
        for e in data.get("entry", [])
        if e.get("resource", {}).get("resourceType") == "ExplanationOfBenefit"
    ]
    if eobs:
        assert result.claims_bundle is not None
        got = [e["resource"] for e in result.claims_bundle["entry"]]
        assert sum(r["resourceType"] == "ExplanationOfBenefit" for r in got) == len(eobs)
    else:
        assert result.claims_bundle is None

"""``bbdirect ccda``: the fixed CLI contract (stdout / -o, one-line reason and non-zero exit on non-FHIR)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from lxml import etree

from bbdirect.cli import main
from tests.unit.ccda.ccda_helpers import PATIENT, bundle

DATA = Path(__file__).resolve().parents[2] / "data" / "fhir"


def _write(tmp_path: Path, obj: object, name: str = "in.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(obj) if not isinstance(obj, str) else obj, encoding="utf-8")
    return p


def test_writes_the_ccd_to_stdout(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["ccda", str(_write(tmp_path, bundle()))])
    assert res.exit_code == 0, res.output
    root = etree.fromstring(res.stdout_bytes)
    assert root.tag == "{urn:hl7-org:v3}ClinicalDocument"


def test_writes_files_html_claims_and_validates(tmp_path: Path) -> None:
    out, html, claims = tmp_path / "out.xml", tmp_path / "out.html", tmp_path / "claims.json"
    src = DATA / "synthea24_clemente_kreiger_small.json"
    res = CliRunner().invoke(
        main, ["ccda", str(src), "-o", str(out), "--html", str(html), "--claims", str(claims), "--validate"]
    )
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    assert "validation: 0 XSD errors, 0 Schematron errors" in res.stderr
    assert etree.parse(str(out)).getroot().tag == "{urn:hl7-org:v3}ClinicalDocument"
    assert "Kreiger" in html.read_text(encoding="utf-8")
    assert json.loads(claims.read_text())["resourceType"] == "Bundle"


def test_not_fhir_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    for content in ('{"hello": 1}', "not json at all", "", "[1,2]"):
        res = CliRunner().invoke(main, ["ccda", str(_write(tmp_path, content))])
        assert res.exit_code != 0
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: not_fhir: "), res.stderr
        assert res.stdout == ""


def test_no_patient_and_missing_file_are_one_line_errors(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main, ["ccda", str(_write(tmp_path, {"resourceType": "Observation", "id": "x"}))]
    )
    assert res.exit_code != 0 and res.stderr.strip() == "error: no_patient: input holds no Patient resource"
    res = CliRunner().invoke(main, ["ccda", str(tmp_path / "nope.json")])
    assert res.exit_code != 0 and len(res.stderr.strip().splitlines()) == 1


def test_reads_stdin(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["ccda", "-"], input=json.dumps(PATIENT))
    assert res.exit_code == 0 and res.stdout.startswith("<?xml")

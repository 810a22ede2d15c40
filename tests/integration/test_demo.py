"""``bbdirect demo`` (the README's run command) performs a real end-to-end transmission."""

import json
import subprocess
import sys
from pathlib import Path

BBDIRECT = Path(sys.executable).parent / "bbdirect"


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BBDIRECT), "demo", "--workdir", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_delivers_a_verified_document_and_gets_mdns(tmp_path):
    result = _demo(tmp_path, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["ccda"]["xsd_errors"] == 0 and steps["ccda"]["schematron_errors"] == 0
    assert steps["delivery"]["state"] == "dispatched"
    assert steps["received"]["signature"] == "valid" and steps["received"]["signer_trusted"] is True
    document = Path(report["document"])
    assert document.is_file()
    assert (
        b"urn:hl7ii:2.16.840.1.113883.10.20.22.1.2" in document.read_bytes()
        or b'root="2.16.840.1.113883.10.20.22.1.2"' in document.read_bytes()
    )
    # No private key lands anywhere but the PKI folder, and those are owner-only.
    for key in (tmp_path / "out" / "pki").glob("*.key"):
        assert key.stat().st_mode & 0o077 == 0


def test_demo_prints_each_step_for_people(tmp_path):
    result = _demo(tmp_path, "--no-validate")
    assert result.returncode == 0, result.stderr
    for n in range(1, 7):
        assert f"[{n}/6]" in result.stdout
    assert "Received document:" in result.stdout


def test_demo_refuses_a_file_that_is_not_fhir(tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": "world"}')
    result = _demo(tmp_path, "--patient", str(junk), "--no-validate")
    assert result.returncode == 1
    assert "FAILED" in result.stderr

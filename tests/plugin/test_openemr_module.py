"""The OpenEMR module: every PHP file lints, and its PHPUnit suite passes on Debian's phpunit."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.services import need

MODULE = Path(__file__).resolve().parents[2] / "plugin" / "openemr" / "oe-module-bluebutton-direct"
PHP_FILES = sorted(p for p in MODULE.rglob("*.php") if "vendor" not in p.parts)


def test_module_commits_no_openemr_code():
    """Only a test stand-in of card_base (our own few lines) lives in the module's tests, never OpenEMR's files."""
    stand_in = MODULE / "tests/stubs/templates/patient/card/card_base.html.twig"
    assert "Test stand-in" in stand_in.read_text()
    assert not (MODULE / "vendor").exists()


def test_module_has_the_files_openemr_expects():
    for name in ["info.txt", "openemr.bootstrap.php", "ModuleManagerListener.php", "moduleConfig.php"]:
        assert (MODULE / name).is_file(), name
    # OpenEMR reads the module name from the first line of info.txt.
    assert (MODULE / "info.txt").read_text().splitlines()[0] == "Blue Button Direct"
    listener = (MODULE / "ModuleManagerListener.php").read_text()
    assert "\nnamespace " not in listener, "OpenEMR loads ModuleManagerListener without a namespace"


@pytest.mark.service("php")
@pytest.mark.parametrize("path", PHP_FILES, ids=lambda p: str(p.relative_to(MODULE)))
def test_php_lint(path):
    php = need("php")
    result = subprocess.run([php, "-l", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.service("php")
def test_phpunit_suite():
    phpunit = need("phpunit")
    result = subprocess.run(
        [phpunit, "--configuration", str(MODULE / "phpunit.xml")],
        cwd=MODULE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "OK (" in result.stdout


def test_no_php_logs_phi():
    """error_log calls may only carry class names, never request or patient data."""
    for path in PHP_FILES:
        if "tests" in path.relative_to(MODULE).parts:
            continue
        for line in path.read_text().splitlines():
            if "error_log(" in line:
                assert "get_class(" in line and "$_" not in line and "$data" not in line, f"{path}: {line}"


@pytest.mark.service("php")
def test_registered_scopes_are_exactly_what_the_sidecar_asks_for():
    """OpenEMR caps a token at the client's registered scopes: the module must register the sidecar's own."""
    from fhir_bridge.web.config import WebConfig

    php = need("php")
    code = (
        "require 'tests/bootstrap.php';"
        " use OpenEMR\\Modules\\BlueButtonDirect\\SmartClientRegistrar as R;"
        " echo json_encode(['clinician' => R::scopes('clinician'), 'patient' => R::scopes('patient'),"
        " 'backend' => R::backendScopes()]);"
    )
    result = subprocess.run([php, "-r", code], cwd=MODULE, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    registered = json.loads(result.stdout)
    web = WebConfig()  # smart_scope_style v1: OpenEMR 7 offers .read scopes
    assert registered["clinician"] == web.scopes("clinician")
    assert registered["patient"] == web.scopes("patient")
    # The backend client (SMART Backend Services): one system/<R>.read per type the sidecar gathers, never
    # system/*.read (OpenEMR refuses it); the sidecar derives the same list (fhir_bridge.fhir.scopes).
    from fhir_bridge.fhir import scopes as backend

    assert registered["backend"] == [f"system/{r}.read" for r in backend.BACKEND_RESOURCES]
    assert all("*" not in scope for scope in registered["backend"])

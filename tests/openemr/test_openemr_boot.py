"""The real OpenEMR of the suite (8.1.0 and 7.0.3) boots, and the module installs through its module manager.

Proof tests for tests/fixtures/openemr.py: if these fail, every other test in tests/openemr/ is meaningless.
"""

from __future__ import annotations

import pytest
import requests

pytestmark = [pytest.mark.service("openemr"), pytest.mark.slow]


def test_openemr_serves_its_fhir_api_and_login_page(openemr):
    metadata = requests.get(f"{openemr.fhir_base}/metadata", timeout=30)
    assert metadata.status_code == 200
    capability = metadata.json()
    assert capability["resourceType"] == "CapabilityStatement"
    assert capability["fhirVersion"].startswith("4.0")
    login = requests.get(f"{openemr.url}/interface/login/login.php?site=default", timeout=30)
    assert login.status_code == 200 and "authUser" in login.text
    version = openemr.sql("SELECT v_major FROM version")[0][0]
    assert version == openemr.version.split(".")[0]


def test_module_is_installed_and_enabled_through_the_module_manager(openemr_with_module):
    rows = openemr_with_module.sql(
        "SELECT mod_name, mod_active, sql_run, type FROM modules "
        "WHERE mod_directory='oe-module-bluebutton-direct'"
    )
    assert len(rows) == 1
    name, active, sql_run, kind = rows[0]
    # mod_name is the first line of info.txt with its newline (InstModuleTable::register); -B shows it as \\n
    assert name.replace("\\n", "").strip() == "Blue Button Direct"
    assert (active, sql_run, kind) == ("1", "1", "0")  # type 0 = custom module (not a Laminas one)
    assert openemr_with_module.php_errors() == []

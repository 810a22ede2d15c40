"""The compose stack for people: valid against the Compose Specification, Dockerfile lint-clean, and
consistent with the repository (every mounted file exists, every required variable is in .env.example)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
BIN = Path(sys.executable).parent


def _compose() -> dict:
    import yaml

    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification():
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_compose_file_is_caught(tmp_path):
    """The validator really validates: an unknown service key fails."""
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  x:\n    image: busybox\n    restart_policy_typo: always\n")
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "warning", str(DOCKER / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_copies_only_what_exists():
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_stack_has_every_part_of_the_system():
    services = _compose()["services"]
    for name in ["openemr", "mariadb", "hapi", "sidecar", "dns", "ldap", "hisp"]:
        assert name in services, name
    assert services["hapi"]["environment"]["hapi.fhir.subscription.resthook_enabled"] == "true"
    mounts = services["openemr"]["volumes"]
    assert any(
        m.startswith("../plugin/openemr/oe-module-bluebutton-direct:")
        and m.split(":")[1].endswith("/interface/modules/custom_modules/oe-module-bluebutton-direct")
        for m in mounts
    )
    assert services["sidecar"]["build"]["dockerfile"] == "docker/Dockerfile"


def test_mounted_files_exist():
    for service in _compose()["services"].values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (DOCKER / source).exists(), f"{mount} is mounted but missing"


def test_required_variables_are_in_env_example():
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)(?::[?-][^}]*)?\}", text))
    example = {
        line.split("=", 1)[0]
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used <= example, f"not documented in .env.example: {sorted(used - example)}"


@pytest.mark.parametrize("script", sorted((DOCKER / "config").glob("*.sh")), ids=lambda p: p.name)
def test_shell_scripts_parse(script):
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_sidecar_config_of_the_stack_loads():
    """The stack's config file is valid for the sidecar's one settings object (no unknown keys, right types)."""
    from fhir_bridge.config import load_settings

    settings = load_settings(DOCKER / "config" / "bbdirect.toml", env={})
    assert settings.fhir_base_url == "http://hapi:8080/fhir"
    assert settings.direct_smtp_port == 2525
    assert settings.server_host == "0.0.0.0"


def test_openemr_presets_only_settings_the_module_has():
    """OPENEMR_SETTING_bbdirect_* in the compose file must name a setting the module defines (a typo would be
    silently ignored by OpenEMR)."""
    defined = set(
        re.findall(
            r"const [A-Z_]+ = '(bbdirect_[a-z_]+)'",
            (ROOT / "plugin/openemr/oe-module-bluebutton-direct/src/GlobalConfig.php").read_text(),
        )
    )
    env = _compose()["services"]["openemr"]["environment"]
    presets = {k.removeprefix("OPENEMR_SETTING_") for k in env if k.startswith("OPENEMR_SETTING_bbdirect_")}
    assert presets, "the stack presets the module settings"
    assert presets <= defined, presets - defined


def test_module_presets_are_written_by_the_presets_job():
    """OpenEMR applies OPENEMR_SETTING_* only to rows that exist at install time; the module's settings have
    none on a fresh stack, so the openemr-presets job writes each module preset (same values, same names)."""
    services = _compose()["services"]
    openemr = services["openemr"]["environment"]
    job = services["openemr-presets"]
    presets = {k: v for k, v in openemr.items() if k.startswith("OPENEMR_SETTING_bbdirect_")}
    assert {k: job["environment"][k] for k in presets} == presets
    script = (DOCKER / "config" / "openemr-presets.sh").read_text()
    for name in presets:
        assert name.removeprefix("OPENEMR_SETTING_") in script, name
    assert "INSERT IGNORE INTO globals" in script, "an administrator's later choice is never overwritten"
    assert job["depends_on"]["mariadb"]["condition"] == "service_healthy"


def test_the_sidecar_and_the_module_name_the_same_backend_client():
    services = _compose()["services"]
    assert (
        services["sidecar"]["environment"]["BBDIRECT_FHIR_CLIENT_ID"]
        == services["openemr"]["environment"]["OPENEMR_SETTING_bbdirect_backend_client_id"]
    )

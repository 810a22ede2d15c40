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


# --- keys and secrets (issue 12 #12) ---------------------------------------------------------
def _named_volume_mounts(service: dict) -> dict[str, str]:
    """{volume name: path in the container} for the named volumes (not bind mounts) of one service."""
    out = {}
    for mount in service.get("volumes", []):
        source, target = mount.split(":")[:2]
        if not source.startswith((".", "/")):
            out[source] = target
    return out


@pytest.fixture(scope="module")
def demo_pki(tmp_path_factory):
    """Run the certs job's own script (the real `bbdirect certs init` and `publish`) with each volume the
    certs service mounts as a directory of its own; returns {volume name: directory}."""
    tmp = tmp_path_factory.mktemp("stack-volumes")
    script = DOCKER / "config" / "init-certs.sh"
    # The script's directories: BBDIRECT_*_DIR with their in-container defaults.
    defaults = dict(
        (path, var) for var, path in re.findall(r"\$\{(BBDIRECT_[A-Z_]+_DIR):-([^}]+)\}", script.read_text())
    )
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp)}
    volumes = {}
    for volume, target in _named_volume_mounts(_compose()["services"]["certs"]).items():
        assert target in defaults, f"the certs job mounts {volume} at {target}, which its script does not use"
        volumes[volume] = tmp / volume
        env[defaults[target]] = str(volumes[volume])
    result = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return volumes


def _visible(service: dict, volumes: dict[str, Path]) -> dict[str, bytes]:
    """Every file the certs job left in the volumes this service mounts: {path in the container: bytes}."""
    seen = {}
    for volume, target in _named_volume_mounts(service).items():
        if volume in volumes:
            for f in volumes[volume].rglob("*"):
                if f.is_file():
                    seen[f"{target}/{f.relative_to(volumes[volume])}"] = f.read_bytes()
    return seen


def test_each_service_mounts_only_its_own_private_key(demo_pki):
    services = _compose()["services"]
    ca_dir = next(d for d in demo_pki.values() if (d / "ca.key").exists())
    ca_key = (ca_dir / "ca.key").read_bytes()
    sender_key = (ca_dir / "records_at_sender.direct.test.key").read_bytes()
    recipient_key = (ca_dir / "inbox_at_recipient.direct.test.key").read_bytes()
    for name, service in services.items():
        if name == "certs":
            continue
        contents = set(_visible(service, demo_pki).values())
        assert ca_key not in contents, f"{name} can read the CA private key"
        for f in contents:
            assert b"PRIVATE KEY" not in f or name in {"sidecar", "hisp"}, f"{name} sees a private key"
    sidecar, hisp = _visible(services["sidecar"], demo_pki), _visible(services["hisp"], demo_pki)
    assert recipient_key not in sidecar.values(), "the sidecar can read the recipient HISP's key"
    assert sender_key not in hisp.values(), "the recipient HISP can read the sidecar's key"
    assert [v for v in sidecar.values() if b"PRIVATE KEY" in v] == [sender_key]
    assert [v for v in hisp.values() if b"PRIVATE KEY" in v] == [recipient_key]

    # ...and each finds its own key, certificate and anchor where its configuration says.
    from fhir_bridge.config import load_settings

    settings = load_settings(DOCKER / "config" / "bbdirect.toml", env={})
    assert sidecar[settings.direct_identity_key] == sender_key
    assert (
        sidecar[settings.direct_identity_cert] == (ca_dir / "records_at_sender.direct.test.pem").read_bytes()
    )
    assert [sidecar[a] for a in settings.direct_trust_anchors] == [(ca_dir / "ca.pem").read_bytes()]
    command = services["hisp"]["command"]
    hisp_args = dict(zip(command[1::2], command[2::2], strict=False))
    assert hisp[hisp_args["--key"]] == recipient_key
    assert hisp[hisp_args["--cert"]] == (ca_dir / "inbox_at_recipient.direct.test.pem").read_bytes()
    assert hisp[hisp_args["--anchor"]] == (ca_dir / "ca.pem").read_bytes()


def test_only_the_certs_job_mounts_the_ca_volume(demo_pki):
    ca_volumes = {v for v, d in demo_pki.items() if (d / "ca.key").exists()}
    assert len(ca_volumes) == 1
    for name, service in _compose()["services"].items():
        if name != "certs":
            assert not ca_volumes & set(_named_volume_mounts(service)), f"{name} mounts the CA volume"


_SECRET_NAME = re.compile(r"PASS|SECRET|API_KEY", re.IGNORECASE)


def test_every_secret_is_required_never_defaulted():
    """A secret left unset must stop `docker compose up` (`${VAR:?message}`), not fall back to a
    well-known value; the variables named like secrets are never given a `:-` default."""
    text = COMPOSE.read_text()
    defaulted = [v for v in re.findall(r"\$\{([A-Z_][A-Z0-9_]*):?-[^}]*\}", text) if _SECRET_NAME.search(v)]
    assert defaulted == [], f"secrets with a default: {defaulted}"
    for name, service in _compose()["services"].items():
        env = service.get("environment", {})
        for key, value in env.items():
            if _SECRET_NAME.search(key) and not key.endswith("_CLIENT_ID"):
                assert re.search(r"\$\{[A-Z_][A-Z0-9_]*:\?[^}]+\}", str(value)), (
                    f"{name}: {key} is not required"
                )
    ldap = _compose()["services"]["ldap"]["environment"]["LDAP_ADMIN_PASSWORD"]
    assert ldap.startswith("${LDAP_ADMIN_PASSWORD:?")
    assert "BBDIRECT_SERVER_SECRET_KEY" in _compose()["services"]["sidecar"]["environment"]

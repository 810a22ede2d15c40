"""The one settings object: defaults → file (TOML/YAML) → BBDIRECT_* environment → overrides; every setting
documented in docs/sidecar.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_bridge.config import ConfigError, Settings, load_settings, reference


def test_defaults_are_the_embedded_demo():
    s = load_settings(env={})
    assert s.database_url.startswith("sqlite:///./var/")
    assert s.queue_backend == "local" and s.pipeline_debounce_seconds == 60.0
    assert s.server_secret_key  # generated when not configured


def test_file_then_environment_then_overrides(tmp_path):
    cfg = tmp_path / "bb.toml"
    cfg.write_text(
        '[database]\nurl = "postgresql://bb@db/bb"\n[pipeline]\ndebounce_seconds = 5\nworkers = 3\n'
        '[server]\napi_keys = ["emr:k1"]\n[web]\nsmart_client_id = "x"\n'
    )
    env = {
        "BBDIRECT_PIPELINE_WORKERS": "7",
        "BBDIRECT_SERVER_API_KEYS": "a:1, b:2",
        "BBDIRECT_FHIR_WRITE_CONSENT": "no",
    }
    s = load_settings(cfg, env=env, pipeline_debounce_seconds=1.5)
    assert s.database_url == "postgresql://bb@db/bb" and s.queue_backend == "procrastinate"
    assert (s.pipeline_workers, s.pipeline_debounce_seconds) == (7, 1.5)
    assert s.server_api_keys == ["a:1", "b:2"] and s.fhir_write_consent is False
    assert s.section("web") == {"smart_client_id": "x"}


def test_yaml_and_the_config_variable(tmp_path):
    cfg = tmp_path / "bb.yaml"
    cfg.write_text("pipeline:\n  debounce_seconds: 2\n")
    assert load_settings(env={"BBDIRECT_CONFIG": str(cfg)}).pipeline_debounce_seconds == 2.0


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("[pipeline]\ndebouce_seconds = 5\n", {}),  # typo: refused, not ignored
        ("[pipeline]\nworkers = 'many'\n", {}),
        ("", {"BBDIRECT_PIPELINE_MAX_ATTEMPTS": "0"}),
        ("", {"BBDIRECT_PIPELINE_QUEUE": "procrastinate"}),  # needs PostgreSQL
        ("", {"BBDIRECT_FHIR_AUTH": "basic"}),
        ("", {"BBDIRECT_SERVER_API_KEYS": "nokey"}),
        ("not toml [", {}),
    ],
)
def test_bad_configuration_fails_at_start(tmp_path, text, env):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(cfg, env=env)


def test_secrets_are_redacted():
    s = load_settings(env={}, server_api_keys=["emr:topsecret"], fhir_bearer_token="tok")
    red = s.redacted()
    assert (
        red["server_api_keys"] == "***" and red["fhir_bearer_token"] == "***" and "topsecret" not in repr(red)
    )


def test_every_setting_and_variable_is_documented():
    doc = (Path(__file__).parents[2] / "docs" / "sidecar.md").read_text()
    missing = [r["env"] for r in reference() if r["env"] not in doc or f"`{r['key']}`" not in doc]
    assert missing == []
    assert len(reference()) == len([f for f in Settings.__dataclass_fields__ if f != "extra"])

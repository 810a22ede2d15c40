"""One loader for every config section: ``[web]`` (declared by the web pages) is read exactly like the sidecar's
own sections - same precedence, same conversions, same error - and YAML means the same as TOML."""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

import pytest

from fhir_bridge.config import ConfigError, Settings, load_section, load_settings, section_keys
from fhir_bridge.web.config import WebConfig

SECRET_LOOKING = "s3cr3t-value"


def _reason(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    """The part of the message after ``invalid value for setting <section.key> (<where>)``."""
    return str(exc.value).split(": ", 1)[1]


@pytest.mark.parametrize("value", ["maybe", SECRET_LOOKING, "2", "tru"])
def test_an_unknown_boolean_string_is_the_same_error_in_web_and_elsewhere(tmp_path, value):
    # The web pages used to read anything but true/yes/on/1 as False: `cookie_secure = "ture"` turned the
    # Secure flag off without a word. Now it fails as a typo in any other section does.
    with pytest.raises(ConfigError) as web_env:
        WebConfig.load({}, env={"BBDIRECT_WEB_COOKIE_SECURE": value})
    with pytest.raises(ConfigError) as fhir_env:
        load_settings(env={"BBDIRECT_FHIR_WRITE_AUDIT": value})
    cfg = tmp_path / "bb.toml"
    cfg.write_text(f'[fhir]\nwrite_audit = "{value}"\n[web]\ncookie_secure = "{value}"\n')
    with pytest.raises(ConfigError) as fhir_file:
        load_settings(cfg, env={})
    with pytest.raises(ConfigError) as web_file:
        WebConfig.load(load_settings(env={}).section("web") | {"cookie_secure": value}, env={})

    assert str(web_env.value).startswith(
        "invalid value for setting web.cookie_secure (from BBDIRECT_WEB_COOKIE_SECURE): "
    )
    assert str(fhir_env.value).startswith(
        "invalid value for setting fhir.write_audit (from BBDIRECT_FHIR_WRITE_AUDIT): "
    )
    assert str(fhir_file.value).startswith(f"invalid value for setting fhir.write_audit (in {cfg}): ")
    assert str(web_file.value).startswith(
        "invalid value for setting web.cookie_secure (in the [web] section): "
    )
    reasons = {_reason(e) for e in (web_env, fhir_env, fhir_file, web_file)}
    assert reasons == {"expected a boolean (true/false, yes/no, on/off, 1/0), got a string"}
    # the messages are exactly "<setting> (<where>): <reason>": no room for the value
    assert SECRET_LOOKING not in "".join(str(e.value) for e in (web_env, fhir_env, fhir_file, web_file))
    assert all(isinstance(e.value, ValueError) for e in (web_env, fhir_env))  # as WebConfig.load raised


@pytest.mark.parametrize(
    ("web_key", "core_key", "value", "reason"),
    [
        ("session_idle_minutes", "pipeline_debounce_seconds", "soon", "expected a number, got a string"),
        ("session_max_hours", "fhir_timeout", True, "expected a number, got a boolean"),
        ("smart_client_id", "fhir_client_id", ["a", "b"], "expected a string, got a list"),
        ("frame_ancestors", "direct_trust_anchors", {"a": 1}, "expected a list of strings"),
    ],
)
def test_other_kinds_fail_the_same_way_in_every_section(web_key, core_key, value, reason):
    with pytest.raises(ConfigError) as web:
        load_section(WebConfig, {"web": {web_key: value}}, {})
    section, key = section_keys(Settings)[core_key]
    with pytest.raises(ConfigError) as core:
        load_section(Settings, {section: {key: value}}, {})
    assert f"web.{web_key}" in str(web.value) and f"{section}.{key}" in str(core.value)
    assert _reason(web) == _reason(core) and _reason(web).startswith(reason)


@pytest.mark.parametrize(("value", "expected"), [(7, 7), (7.0, 7), ("7", 7), (7.5, None), ("7.5", None)])
def test_an_integer_setting_takes_whole_numbers_only(value, expected):
    # a fraction used to be cut silently (`workers = 2.9` ran 2 workers)
    if expected is None:
        with pytest.raises(ConfigError, match=r"pipeline\.workers .*expected an integer, got a"):
            load_section(Settings, {"pipeline": {"workers": value}}, {})
    else:
        assert load_section(Settings, {"pipeline": {"workers": value}}, {}).pipeline_workers == expected


def test_a_secret_is_never_echoed():
    with pytest.raises(ConfigError) as exc:
        load_settings(env={"BBDIRECT_SERVER_PORT": SECRET_LOOKING})
    with pytest.raises(ConfigError) as web:
        WebConfig.load({"smart_client_secret": [SECRET_LOOKING]}, env={})
    assert SECRET_LOOKING not in str(exc.value) + str(web.value)
    assert (
        exc.value.__cause__ is None and exc.value.__suppress_context__
    )  # the pydantic error holds the value


def test_an_unknown_key_in_web_is_an_error_as_in_every_section():
    with pytest.raises(ConfigError, match=r"unknown setting web\.cookie_secured"):
        WebConfig.load({"cookie_secured": False}, env={})


# --- env overrides a file value in every section the same way --------------------------------------
def _file_and_env(kind: Any, n: int) -> tuple[Any, str, Any]:
    """A file value, an environment text and what that text means, different from each other and the
    defaults, for a field of type ``kind``."""
    if kind is bool:
        return (n % 2 == 0), ("no" if n % 2 == 0 else "on"), (n % 2 != 0)
    if kind is int:
        return 1000 + n, str(2000 + n), 2000 + n
    if kind is float:
        return 1000.5 + n, f"{2000.25 + n}", 2000.25 + n
    if kind is str:
        return f"file-{n}", f"env-{n}", f"env-{n}"
    return [f"file-{n}"], f" env-{n}a, env-{n}b ,", [f"env-{n}a", f"env-{n}b"]


@pytest.mark.parametrize("declaration", [Settings, WebConfig])
def test_env_overrides_the_file_in_every_section_the_same_way(declaration):
    hints = get_type_hints(declaration)
    keys = section_keys(declaration)
    tables: dict[str, dict[str, Any]] = {}
    env: dict[str, str] = {}
    expected_file: dict[str, Any] = {}
    expected_env: dict[str, Any] = {}
    for n, (name, (section, key)) in enumerate(sorted(keys.items())):
        file_value, env_text, env_value = _file_and_env(hints[name], n)
        tables.setdefault(section, {})[key] = file_value
        env[f"BBDIRECT_{section.upper()}_{key.upper()}"] = env_text
        expected_file[name], expected_env[name] = file_value, env_value
    sections = {section for section, _ in keys.values()}
    assert sections == ({"web"} if declaration is WebConfig else set(tables)) and len(sections) >= 1

    from_file = load_section(declaration, tables, {})
    assert {name: getattr(from_file, name) for name in keys} == expected_file
    from_env = load_section(declaration, tables, env)
    assert {name: getattr(from_env, name) for name in keys} == expected_env
    # and one variable overrides only its own setting
    one = next(iter(sorted(keys)))
    section, key = keys[one]
    partial = load_section(
        declaration, tables, {f"BBDIRECT_{section}_{key}".upper(): env[f"BBDIRECT_{section}_{key}".upper()]}
    )
    assert getattr(partial, one) == expected_env[one]
    assert all(getattr(partial, name) == expected_file[name] for name in keys if name != one)


def test_env_overrides_the_file_through_the_public_entry_points(tmp_path, monkeypatch):
    cfg = tmp_path / "bb.toml"
    cfg.write_text("[pipeline]\nworkers = 3\n[web]\nsession_idle_minutes = 20\ncookie_secure = true\n")
    env = {"BBDIRECT_PIPELINE_WORKERS": "5", "BBDIRECT_WEB_COOKIE_SECURE": "off"}
    settings = load_settings(cfg, env=env)
    web = WebConfig.load(settings.section("web"), env=env)
    assert settings.pipeline_workers == 5 and web.cookie_secure is False and web.session_idle_minutes == 20.0
    monkeypatch.setenv("BBDIRECT_WEB_SESSION_IDLE_MINUTES", "7")  # the process environment by default
    assert WebConfig.load(settings.section("web")).session_idle_minutes == 7.0


# --- YAML means the same as TOML ---------------------------------------------------------------------
TOML = """\
[server]
port = 8800
secret_key = "fixed-for-comparison"
api_keys = ["emr:k1", "ops:sha256:abcd"]
ops_public = true

[database]
url = "sqlite:///./var/other.sqlite3"
auto_upgrade = false

[fhir]
base_url = "https://ehr.example.org/fhir"
auth = "smart"
timeout = 12.5
write_audit = true

[pipeline]
debounce_seconds = 5
workers = 0
queue = "local"

[direct]
trust_anchors = ["/etc/a.pem", "/etc/b.pem"]
allow_networks = ["10.0.0.0/8"]
smtp_starttls = true
inbound_max_bytes = 4194304

[web]
smart_client_id = "emr-user"
smart_allowed_iss = ["https://b.test/fhir"]
session_idle_minutes = 5
cookie_secure = false
cookie_samesite = "None"
"""

YAML = """\
server:
  port: 8800
  secret_key: fixed-for-comparison
  api_keys: [emr:k1, "ops:sha256:abcd"]
  ops_public: yes
database:
  url: sqlite:///./var/other.sqlite3
  auto_upgrade: false
fhir:
  base_url: https://ehr.example.org/fhir
  auth: smart
  timeout: 12.5
  write_audit: true
pipeline:
  debounce_seconds: 5
  workers: 0
  queue: local
direct:
  trust_anchors:
    - /etc/a.pem
    - /etc/b.pem
  allow_networks: [10.0.0.0/8]
  smtp_starttls: on
  inbound_max_bytes: 4194304
web:
  smart_client_id: emr-user
  smart_allowed_iss: ["https://b.test/fhir"]
  session_idle_minutes: 5
  cookie_secure: off
  cookie_samesite: "None"
"""


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_a_yaml_file_loads_the_same_as_the_equivalent_toml(tmp_path, suffix):
    toml_file, yaml_file = tmp_path / "bb.toml", tmp_path / f"bb{suffix}"
    toml_file.write_text(TOML)
    yaml_file.write_text(YAML)
    from_toml, from_yaml = load_settings(toml_file, env={}), load_settings(yaml_file, env={})
    assert from_toml == from_yaml
    assert from_toml != load_settings(env={}, server_secret_key="fixed-for-comparison")  # the file mattered
    assert from_yaml.fhir_timeout == 12.5 and from_yaml.pipeline_debounce_seconds == 5.0
    assert from_yaml.direct_trust_anchors == ["/etc/a.pem", "/etc/b.pem"] and from_yaml.server_ops_public
    web_toml = WebConfig.load(from_toml.section("web"), env={})
    web_yaml = WebConfig.load(from_yaml.section("web"), env={})
    assert web_toml == web_yaml and dataclasses.asdict(web_toml) != dataclasses.asdict(WebConfig())
    assert web_yaml.cookie_secure is False and web_yaml.session_idle_minutes == 5.0


def test_bad_yaml_is_a_config_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("pipeline: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(cfg, env={})
    cfg.write_text("pipeline:\n  workers: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"pipeline\.workers .*expected an integer, got a list"):
        load_settings(cfg, env={})

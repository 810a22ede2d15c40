"""One settings object for the sidecar: embedded defaults → config file (TOML or YAML) → ``BBDIRECT_*`` env.

Why one flat object: every part of the sidecar (API, pipeline, FHIR client, web pages, CLI) reads the same
values, and an operator needs one list of names to look up. Each setting lives in a *section* of the config
file and has exactly one environment variable, ``BBDIRECT_<SECTION>_<KEY>`` (upper case), e.g.::

    [database]
    url = "postgresql://bb@db/bbdirect"      # or BBDIRECT_DATABASE_URL=...

The attribute name is ``<section>_<key>`` (``settings.database_url``). Unknown keys in the file are an error
(a typo must not silently fall back to a default); extra sections owned by other parts of the sidecar are
kept in :attr:`Settings.extra` and read with :meth:`Settings.section`.

The embedded defaults run the demo: a SQLite file under ``./var``, a local FHIR server on port 8080, demo
Direct identities under ``./var/demo``, one process that serves the API and runs the workers.

Why one loader for every section: a value must mean the same wherever it is written. :func:`load_section`
reads any *declaration* - a dataclass whose fields say their section (this module's :class:`Settings`; the
web pages' ``[web]`` section, :class:`fhir_bridge.web.config.WebConfig`) - with the same precedence (defaults
→ file → ``BBDIRECT_<SECTION>_<KEY>``), the same conversions (the :data:`Bool`, :data:`Int`, :data:`Float`,
:data:`Str`, :data:`StrList` field types, checked by pydantic) and the same :class:`ConfigError`, which names
``section.key``, where the value came from and what kind of value it was, never the value (may be a secret).
"""

# ruff: noqa: RUF009  (`_s` is `dataclasses.field` with documentation metadata)
from __future__ import annotations

import dataclasses
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import yaml
from pydantic import BeforeValidator, TypeAdapter, ValidationError

from direct.netpolicy import parse_networks
from fhir_bridge.errors import BridgeError

ENV_PREFIX = "BBDIRECT_"


class ConfigError(BridgeError, ValueError):
    """The configuration file or an environment variable is invalid (names the setting, never its value)."""

    code = "bad_config"


# --- conversions: one table for every section --------------------------------------------------
# File values arrive typed (TOML/YAML), environment values as text; both go through the same function, so
# `cookie_secure = "maybe"` in [web] and `BBDIRECT_FHIR_WRITE_AUDIT=maybe` fail the same way.
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _kind(value: Any) -> str:
    """What sort of value was given, for an error message that must not repeat the value itself."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string" if value.strip() else "an empty string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if value is None:
        return "no value"
    return f"a {type(value).__name__}"


def _expected(what: str, value: Any) -> ValueError:
    return ValueError(f"expected {what}, got {_kind(value)}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int):
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _expected("a boolean (true/false, yes/no, on/off, 1/0)", value)


def _to_int(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return int(value)
        except ValueError:
            pass
    raise _expected("an integer", value)


def _to_float(value: Any) -> float:
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    raise _expected("a number", value)


def _to_str(value: Any) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise _expected("a string", value)


def _to_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        return [str(v) for v in value]
    raise _expected("a list of strings (comma-separated in the environment)", value)


#: Field types of a config declaration: the conversion travels with the type.
Bool = Annotated[bool, BeforeValidator(_to_bool)]
Int = Annotated[int, BeforeValidator(_to_int)]
Float = Annotated[float, BeforeValidator(_to_float)]
Str = Annotated[str, BeforeValidator(_to_str)]
StrList = Annotated[list[str], BeforeValidator(_to_list)]


def setting(doc: str, *, secret: bool = False, **kw: Any) -> Any:
    """A setting of a one-section declaration (``SECTION`` on the class): its documentation and whether it is
    a secret (masked by ``redacted``) travel with the field."""
    return field(metadata={"doc": doc, "secret": secret}, **kw)


def _s(section: str, doc: str, **kw: Any) -> Any:
    """A setting of :class:`Settings`: named ``<section>_<key>``, its file section travels with the field."""
    secret = kw.pop("secret", False)
    return field(metadata={"section": section, "doc": doc, "secret": secret}, **kw)


@dataclass
class Settings:
    # --- server ----------------------------------------------------------------------------------
    server_host: Str = _s("server", "Address the HTTP server listens on.", default="127.0.0.1")
    server_port: Int = _s("server", "TCP port of the HTTP server (API, web pages, rest-hook).", default=8700)
    server_threads: Int = _s("server", "Waitress worker threads.", default=8)
    server_public_url: Str = _s(
        "server",
        "Base URL at which others reach this sidecar (rest-hook endpoint, SMART redirect).",
        default="http://127.0.0.1:8700",
    )
    server_secret_key: Str = _s(
        "server",
        "Secret for signing sessions and patient tokens. Set it in production (a random value is "
        "generated per process otherwise, so tokens do not survive a restart).",
        default="",
        secret=True,
    )
    server_api_keys: StrList = _s(
        "server",
        "API keys accepted as `Authorization: Bearer <key>` (integrators, the EMR plugin). Each entry is "
        "`name:key` or `name:sha256:<hex digest of key>`; comma-separated in the environment.",
        default_factory=list,
        secret=True,
    )
    server_patient_token_ttl: Int = _s(
        "server", "Lifetime of patient-scoped API tokens, seconds.", default=3600
    )
    server_log_level: Str = _s("server", "Log level (DEBUG, INFO, WARNING, ERROR).", default="INFO")
    server_lookups_per_minute: Int = _s(
        "server",
        "Certificate lookups one patient (patient token or signed-in page) may start per minute; more answer "
        "429 / 'try again shortly' (0 = no limit). API keys are not limited.",
        default=30,
    )
    server_lookups_per_minute_staff: Int = _s(
        "server",
        "Certificate lookups one signed-in clinician may start per minute (0 = no limit).",
        default=120,
    )
    server_resend_quota_per_hour: Int = _s(
        "server",
        "Resends one patient (with a patient token) may request in any sliding hour; more answer 429 "
        "(0 = no quota).",
        default=10,
    )
    server_resend_quota_per_hour_api_key: Int = _s(
        "server",
        "Resends one API key may request in any sliding hour; more answer 429 (0 = no quota).",
        default=200,
    )
    server_ops_keys: StrList = _s(
        "server",
        "Credentials accepted (besides the API keys) as `Authorization: Bearer <key>` on `/metrics` and "
        "`/readyz` only, e.g. for a Prometheus scraper: `name:key` or `name:sha256:<hex>`.",
        default_factory=list,
        secret=True,
    )
    server_ops_public: Bool = _s(
        "server",
        "Answer `/metrics` and `/readyz` without a credential. Only for a port that nothing outside a "
        "trusted network reaches; `/healthz` (liveness) is always open.",
        default=False,
    )

    # --- database --------------------------------------------------------------------------------
    database_url: Str = _s(
        "database",
        "SQLAlchemy URL. SQLite file by default; `postgresql://...` for scale-out.",
        default="sqlite:///./var/bbdirect.sqlite3",
    )
    database_auto_upgrade: Bool = _s(
        "database", "Apply migrations at start (`bbdirect db upgrade` does it explicitly).", default=True
    )

    # --- fhir ------------------------------------------------------------------------------------
    fhir_base_url: Str = _s("fhir", "Base URL of the FHIR R4 server.", default="http://127.0.0.1:8080/fhir")
    fhir_auth: Str = _s("fhir", "`none`, `bearer` or `smart` (SMART Backend Services).", default="none")
    fhir_bearer_token: Str = _s("fhir", "Static bearer token when `auth = bearer`.", default="", secret=True)
    fhir_client_id: Str = _s(
        "fhir",
        "SMART Backend Services client id (the OpenEMR module registers `bbdirect-sidecar` by default).",
        default="bbdirect-sidecar",
    )
    fhir_token_url: Str = _s("fhir", "Token endpoint (discovered from the server when empty).", default="")
    fhir_private_key_file: Str = _s(
        "fhir",
        "PEM private key for the client assertion (RSA: RS384, EC P-384: ES384). Empty = "
        "`./var/fhir-client-key.pem`, an RSA key generated there on first use and kept (its JWKS is served "
        "at `/.well-known/jwks.json` and printed by `bbdirect fhir jwks`).",
        default="",
    )
    fhir_key_id: Str = _s("fhir", "`kid` of the signing key (as registered in the JWKS).", default="")
    fhir_scopes: Str = _s(
        "fhir",
        "Scopes requested with client_credentials. Empty = derived: `system/<Type>.read` for each type the "
        "record is built from that the server has (never `system/*.read`); `bbdirect fhir scopes` lists "
        "them.",
        default="",
    )
    fhir_timeout: Float = _s("fhir", "HTTP timeout per request, seconds.", default=30.0)
    fhir_write_consent: Bool = _s(
        "fhir",
        "Write each authorization to the FHIR server as a `Consent` (when it allows writes).",
        default=True,
    )
    fhir_write_audit: Bool = _s(
        "fhir", "Write consent changes and sends as FHIR `AuditEvent` (when it allows writes).", default=False
    )

    # --- sources (change detection) --------------------------------------------------------------
    sources_subscriptions: Bool = _s(
        "sources", "Create and own R4 rest-hook Subscriptions (when the server supports them).", default=True
    )
    sources_subscription_secret: Str = _s(
        "sources", "Shared secret HAPI sends back in the notification header.", default="", secret=True
    )
    sources_subscription_recheck: Float = _s(
        "sources", "Seconds between checks that our Subscriptions exist and are not in error.", default=60.0
    )
    sources_polling: Bool = _s("sources", "Poll with `_lastUpdated` (or `$export?_since=`).", default=False)
    sources_poll_interval: Float = _s("sources", "Seconds between polls.", default=30.0)
    sources_poll_overlap: Float = _s(
        "sources", "Watermark overlap to survive clock skew, seconds.", default=5.0
    )
    sources_pings: Bool = _s("sources", "Accept `POST /api/v1/patients/{id}/changed` pings.", default=True)

    # --- pipeline --------------------------------------------------------------------------------
    pipeline_debounce_seconds: Float = _s(
        "pipeline", "Quiet period after the last change before an `always` send.", default=60.0
    )
    pipeline_min_interval_seconds: Float = _s(
        "pipeline",
        "Optional frequency cap: minimum time between two sends of one authorization (0 = off).",
        default=0.0,
    )
    pipeline_resend_min_interval: Float = _s(
        "pipeline",
        "Minimum seconds between the newest transmission of an authorization and a resend of it; earlier "
        "resends answer 429 with Retry-After (0 = off).",
        default=60.0,
    )
    pipeline_max_attempts: Int = _s(
        "pipeline", "Attempts before a transient failure becomes final.", default=8
    )
    pipeline_backoff_base: Float = _s(
        "pipeline", "First retry delay, seconds (doubles each attempt).", default=30.0
    )
    pipeline_backoff_max: Float = _s("pipeline", "Longest retry delay, seconds.", default=3600.0)
    pipeline_lease_seconds: Float = _s(
        "pipeline",
        "How long a worker owns a job before another may take it over (crash recovery).",
        default=120.0,
    )
    pipeline_mdn_timeout: Float = _s(
        "pipeline",
        "Seconds to wait for a processed MDN before the transmission fails (`mdn_timeout`).",
        default=3600.0,
    )
    pipeline_workers: Int = _s(
        "pipeline",
        "Worker threads in the serving process (0 = run workers only with `bbdirect worker`).",
        default=2,
    )
    pipeline_queue: Str = _s(
        "pipeline",
        "`local` (jobs claimed from the database; SQLite or PostgreSQL, one machine) or `procrastinate` "
        "(PostgreSQL queue shared by workers on many machines). `auto` = procrastinate on PostgreSQL.",
        default="auto",
    )
    pipeline_sweep_seconds: Int = _s(
        "pipeline",
        "procrastinate only: how often (seconds, 1-60) lost tasks and jobs of dead workers are re-queued.",
        default=60,
    )
    pipeline_tick_seconds: Float = _s(
        "pipeline", "How often an idle local worker looks for due work.", default=0.5
    )

    # --- direct ----------------------------------------------------------------------------------
    direct_from_address: Str = _s(
        "direct", "Our Direct address (sender of every message).", default="bluebutton@direct.bbdirect.test"
    )
    direct_identity_cert: Str = _s(
        "direct", "PEM certificate bound to our address or domain.", default="./var/demo/sender.pem"
    )
    direct_identity_key: Str = _s(
        "direct", "PEM private key of that certificate.", default="./var/demo/sender.key", secret=True
    )
    direct_identity_chain: StrList = _s("direct", "PEM intermediates to send along.", default_factory=list)
    direct_trust_anchors: StrList = _s(
        "direct",
        "PEM trust anchor files (clinician-created authorizations must chain to one).",
        default_factory=lambda: ["./var/demo/anchor.pem"],
    )
    direct_trust_bundles: StrList = _s(
        "direct",
        "Trust bundle URLs (PKCS#7, signed or not), refreshed on their interval. `https://` only unless "
        "`trust_bundles_allow_http`.",
        default_factory=list,
    )
    direct_trust_bundle_signing_cert: Str = _s(
        "direct",
        "PEM file with the trust community's bundle-signing certificate(s). When set, every bundle of "
        "`trust_bundles` must be a CMS SignedData whose signature verifies with one of them (Trust Bundle "
        "Distribution IG); a bad or missing signature is refused and the last good bundle kept.",
        default="",
    )
    direct_trust_bundles_allow_http: Bool = _s(
        "direct",
        "Accept plain `http://` trust bundle URLs (refused by default: https required).",
        default=False,
    )
    direct_allow_networks: StrList = _s(
        "direct",
        "Networks (CIDR, comma-separated in the environment) that certificate discovery, AIA/CRL, trust "
        "bundle and LDAP fetches may reach although internal: loopback, private, link-local, ULA, CGNAT, "
        "NAT64, multicast and reserved ranges are refused unless listed here (intranet peers).",
        default_factory=list,
    )
    direct_lookup_deadline: Float = _s(
        "direct",
        "Total seconds one certificate lookup (DNS, IPKIX, LDAP, AIA, CRL) may take; then it ends with "
        "`discovery_deadline`.",
        default=10.0,
    )
    direct_dns_server: Str = _s(
        "direct", "DNS server for CERT lookups (`host[:port]`; system when empty).", default=""
    )
    direct_smtp_host: Str = _s(
        "direct", "Smart host for outbound mail (MX of the recipient when empty).", default=""
    )
    direct_smtp_port: Int = _s("direct", "Port of the smart host.", default=25)
    direct_smtp_starttls: Bool = _s("direct", "Require STARTTLS to the smart host.", default=False)
    direct_inbound_host: Str = _s(
        "direct", "Address of our SMTP endpoint receiving MDNs/DSNs.", default="127.0.0.1"
    )
    direct_inbound_port: Int = _s(
        "direct", "Port of that endpoint (0 = off; MX of our Direct domain points here).", default=0
    )
    direct_inbound_max_bytes: Int = _s(
        "direct",
        "Largest message that endpoint takes (bytes; more gets 552). Notices are small: 2 MiB by default.",
        default=2 * 2**20,
    )
    direct_inbound_max_connections: Int = _s(
        "direct", "Simultaneous SMTP sessions at that endpoint (one more gets 421, try later).", default=16
    )
    direct_inbound_workers: Int = _s(
        "direct", "Threads unsealing notices at that endpoint (off the event loop).", default=2
    )
    direct_dsn_relays: StrList = _s(
        "direct",
        "Host names, IP addresses or networks (CIDR) of the relays - our own smart host - whose unsigned "
        "DSNs may fail a transmission. Empty (default) = unsigned DSNs are recorded as unverified reports "
        "and change nothing.",
        default_factory=list,
    )
    direct_subject: Str = _s(
        "direct", "Subject of sent messages (no PHI).", default="Health record (Blue Button)"
    )

    #: Sections of the config file this object does not own (e.g. ``[web]``), kept for their owners.
    extra: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={"section": None})

    # ---------------------------------------------------------------------------------------------
    def section(self, name: str) -> dict[str, Any]:
        """Raw key/values of a config section owned by another part of the sidecar (empty when absent)."""
        return dict(self.extra.get(name, {}))

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql", "postgres:"))

    @property
    def queue_backend(self) -> str:
        """The effective job queue: ``local`` or ``procrastinate``."""
        if self.pipeline_queue == "auto":
            return "procrastinate" if self.is_postgres else "local"
        return self.pipeline_queue

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets masked: safe to log or print."""
        out: dict[str, Any] = {}
        for f in _fields():
            value = getattr(self, f.name)
            out[f.name] = "***" if f.metadata["secret"] and value else value
        return out

    def validate(self) -> None:
        """Reject values that cannot work (checked once at load, so a bad deployment fails at start)."""
        if self.fhir_auth not in {"none", "bearer", "smart"}:
            raise ConfigError("fhir.auth must be none, bearer or smart")
        if self.fhir_auth == "smart" and not self.fhir_client_id:
            raise ConfigError("fhir.client_id is required when fhir.auth = smart")
        if self.pipeline_queue not in {"auto", "local", "procrastinate"}:
            raise ConfigError("pipeline.queue must be auto, local or procrastinate")
        if self.queue_backend == "procrastinate" and not self.is_postgres:
            raise ConfigError("pipeline.queue = procrastinate needs a PostgreSQL database.url")
        if self.pipeline_debounce_seconds < 0 or self.pipeline_min_interval_seconds < 0:
            raise ConfigError("pipeline durations must not be negative")
        if not 1 <= self.pipeline_sweep_seconds <= 60:
            raise ConfigError("pipeline.sweep_seconds must be between 1 and 60")
        if self.pipeline_max_attempts < 1:
            raise ConfigError("pipeline.max_attempts must be at least 1")
        if self.direct_inbound_max_bytes < 65536:
            raise ConfigError("direct.inbound_max_bytes must be at least 65536 (RFC 5321 §4.5.3.1.7)")
        if self.direct_inbound_max_connections < 1 or self.direct_inbound_workers < 1:
            raise ConfigError("direct.inbound_max_connections and direct.inbound_workers must be at least 1")
        for entry in self.server_api_keys:
            if ":" not in entry or not entry.split(":", 1)[1]:
                raise ConfigError("server.api_keys entries must be name:key or name:sha256:<hex>")
        for entry in self.server_ops_keys:
            if ":" not in entry or not entry.split(":", 1)[1]:
                raise ConfigError("server.ops_keys entries must be name:key or name:sha256:<hex>")
        try:
            parse_networks(self.direct_allow_networks)
        except ValueError:
            raise ConfigError("direct.allow_networks entries must be networks in CIDR form") from None
        if self.direct_lookup_deadline <= 0:
            raise ConfigError("direct.lookup_deadline must be positive")
        if self.pipeline_resend_min_interval < 0:
            raise ConfigError("pipeline.resend_min_interval must not be negative")
        if self.server_resend_quota_per_hour < 0 or self.server_resend_quota_per_hour_api_key < 0:
            raise ConfigError("server.resend_quota_per_hour* must not be negative")


def _fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Settings) if f.metadata.get("section")]


def env_name(f: dataclasses.Field[Any]) -> str:
    return ENV_PREFIX + f.name.upper()


def file_key(f: dataclasses.Field[Any]) -> tuple[str, str]:
    section = f.metadata["section"]
    return section, f.name[len(section) + 1 :]


def reference() -> list[dict[str, str]]:
    """Every setting: section, key, environment variable, type, default, doc (docs/sidecar.md lists them)."""
    hints = get_type_hints(Settings)
    defaults = Settings()
    rows = []
    for f in _fields():
        section, key = file_key(f)
        default = getattr(defaults, f.name)
        rows.append(
            {
                "section": section,
                "key": key,
                "env": env_name(f),
                "type": getattr(hints[f.name], "__name__", str(hints[f.name])),
                "default": "(random)" if f.name == "server_secret_key" else repr(default),
                "doc": f.metadata["doc"],
            }
        )
    return rows


# --- the one loader ----------------------------------------------------------------------------
D = TypeVar("D")


def section_keys(declaration: type) -> dict[str, tuple[str, str]]:
    """Field name → (section, key) of a declaration: :class:`Settings`' fields carry their section
    (``pipeline_workers`` is ``pipeline.workers``); a one-section declaration names it in ``SECTION``."""
    own = getattr(declaration, "SECTION", None)
    keys: dict[str, tuple[str, str]] = {}
    for f in dataclasses.fields(declaration):
        section = f.metadata.get("section")
        if section:
            keys[f.name] = (section, f.name[len(section) + 1 :])
        elif own and "section" not in f.metadata:
            keys[f.name] = (own, f.name)
    return keys


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(declaration: type) -> TypeAdapter[Any]:
    """One validator per declaration, built once (building inspects every field; a race builds it twice)."""
    adapter = _ADAPTERS.get(declaration)
    if adapter is None:
        adapter = _ADAPTERS[declaration] = TypeAdapter(declaration)
    return adapter


def load_section(
    declaration: type[D],
    tables: Mapping[str, Mapping[str, Any]],
    env: Mapping[str, str],
    *,
    source: str = "the config file",
    defaults: Mapping[str, Any] | None = None,
) -> D:
    """Build a declaration: its defaults, then ``defaults``, then its sections' keys in ``tables`` (a config
    file's ``{section: {key: value}}``), then ``BBDIRECT_<SECTION>_<KEY>`` of ``env``; each value converted
    by its field type. An unknown key of one of its sections is an error (a typo must not silently fall back
    to a default); sections it does not declare are not its business. ``source`` names the file in errors."""
    keys = section_keys(declaration)
    by_key = {where: name for name, where in keys.items()}
    values: dict[str, Any] = dict(defaults or {})
    origin: dict[str, str] = {}
    for section in sorted({section for section, _ in keys.values()}):
        for key, value in (tables.get(section) or {}).items():
            name = by_key.get((section, key))
            if name is None:
                raise ConfigError(f"unknown setting {section}.{key} in {source}")
            values[name], origin[name] = value, f"in {source}"
    for name, (section, key) in keys.items():
        variable = f"{ENV_PREFIX}{section}_{key}".upper()
        if variable in env:
            values[name], origin[name] = env[variable], f"from {variable}"
    try:
        built: D = _adapter(declaration).validate_python(values)
        return built
    except ValidationError as exc:
        raise _invalid(exc, keys, origin) from None  # `from None`: the pydantic error holds the value


def _invalid(
    exc: ValidationError, keys: Mapping[str, tuple[str, str]], origin: Mapping[str, str]
) -> ConfigError:
    """``invalid value for setting web.cookie_secure (from BBDIRECT_WEB_COOKIE_SECURE): expected a boolean
    (...), got a string``: which setting, where it came from, what kind of value - never the value."""
    error = exc.errors(include_input=False, include_url=False)[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    section, key = keys.get(name, ("?", name))
    reason = error.get("ctx", {}).get("error")
    why = str(reason) if isinstance(reason, ValueError) else "a value of the wrong kind"
    where = origin.get(name, "default")
    return ConfigError(f"invalid value for setting {section}.{key} ({where}): {why}")


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a TOML (``.toml``) or YAML (``.yaml``/``.yml``) config file into ``{section: {key: value}}``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    if p.suffix.lower() in {".yaml", ".yml"}:
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            raise ConfigError(f"config file {p} is not valid YAML") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"config file {p} must contain only [section] tables")
    return data


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings: defaults, then the file at ``path``, then ``BBDIRECT_*`` variables, then overrides.

    ``BBDIRECT_CONFIG`` names the file when ``path`` is None. Keyword overrides (tests, CLI flags) win last
    and are taken as given (already typed). Sections :class:`Settings` does not declare (``[web]``) are kept
    raw in :attr:`Settings.extra` for their declarations, which :func:`load_section` loads the same way.
    """
    env = os.environ if env is None else env
    path = path or env.get(ENV_PREFIX + "CONFIG") or None
    tables = read_file(path) if path else {}
    owned = {section for section, _ in section_keys(Settings).values()}
    extra = {section: dict(table) for section, table in tables.items() if section not in owned}
    settings = load_section(Settings, tables, env, source=str(path or "the config file"))

    hints = get_type_hints(Settings)
    for name in overrides:
        if name not in hints or name == "extra":
            raise ConfigError(f"unknown setting {name}")
    settings = dataclasses.replace(settings, extra=extra, **overrides)
    if not settings.server_secret_key:
        settings.server_secret_key = secrets.token_urlsafe(32)
    settings.validate()
    return settings

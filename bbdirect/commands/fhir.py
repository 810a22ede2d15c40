"""``bbdirect fhir jwks|scopes|check``: what to register with the EHR, and whether it works.

Why a command: an administrator registering the sidecar's SMART Backend Services client (OpenEMR: Admin →
System → API Clients, or the module's Enable) needs the public JWK Set and the exact scopes, and afterwards
wants one command that says "token obtained, these types readable" or why not. Output is JSON on stdout (for
scripts and the e2e tests); errors are one line on stderr with exit 1. Nothing printed is secret: the JWKS
holds public halves only, and no token is printed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

CONFIG_HELP = "Config file (TOML or YAML); BBDIRECT_* environment variables override it."


def _settings(config: str | None) -> Any:
    from fhir_bridge.config import ConfigError, load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _emit(data: Any, compact: bool) -> None:
    click.echo(json.dumps(data, separators=(",", ":")) if compact else json.dumps(data, indent=2))


def _smart_client(settings: Any) -> Any:
    from fhir_bridge import wiring
    from fhir_bridge.fhir.auth import SmartBackendAuth

    client = wiring.fhir_client(settings)
    if not isinstance(client.auth, SmartBackendAuth):
        raise click.ClickException("fhir.auth is not smart: there is no backend client to check")
    return client


@click.group()
def fhir() -> None:
    """The sidecar's SMART Backend Services client: JWKS to register, scopes, a live check."""


@fhir.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--compact", is_flag=True, help="One line of JSON (default: indented).")
def jwks(config: str | None, compact: bool) -> None:
    """Print the public JWK Set to register (the same document as GET /.well-known/jwks.json).

    Generates the signing key into the data directory (./var/fhir-client-key.pem) on first use when
    fhir.private_key_file is empty, exactly as the running sidecar would.
    """
    from fhir_bridge.fhir.auth import jwks_from_settings

    settings = _settings(config)
    try:
        document = jwks_from_settings(settings)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"the signing key cannot be loaded ({type(exc).__name__})") from None
    _emit(document, compact)


@fhir.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--offline", is_flag=True, help="Do not ask the server: every type the record is built from.")
def scopes(config: str | None, offline: bool) -> None:
    """Print the scopes the sidecar requests (derived from the server unless fhir.scopes is set)."""
    from fhir_bridge.fhir import scopes as smart_scopes
    from fhir_bridge.fhir.errors import FhirError

    settings = _settings(config)
    if settings.fhir_scopes:
        requested = settings.fhir_scopes
    elif offline:
        requested = smart_scopes.derive_scopes()
    else:
        try:
            requested = _smart_client(settings).auth.scopes
        except FhirError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from None
    _emit({"client_id": settings.fhir_client_id, "scope": requested}, compact=False)


@fhir.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
def check(config: str | None) -> None:
    """Get a token and report what the sidecar can read: exit 0 when every type it asks for is granted."""
    from fhir_bridge.fhir.errors import FhirError
    from fhir_bridge.fhir.gather import US_CORE_PATIENT_SEARCHES

    settings = _settings(config)
    client = _smart_client(settings)
    auth = client.auth
    try:
        caps = client.capabilities()
        auth.access_token()
    except FhirError as exc:
        click.echo(f"error: {exc.code}: {exc.message}" + (f" ({exc.detail})" if exc.detail else ""), err=True)
        sys.exit(1)
    from fhir_bridge.sources.polling import Poller

    try:
        polled, exported = Poller(client, store=None, on_change=print).plan()  # type: ignore[arg-type]  # plan() never reads the store
    except FhirError:
        polled, exported = [], []
    granted = list(auth.granted_scopes or ())
    missing = [s for s in auth.scopes.split() if s not in granted]
    searched = [t for t, p in US_CORE_PATIENT_SEARCHES if caps.can_search(t, p) and auth.readable(t) is True]
    report = {
        "fhir_base_url": client.base_url,
        "client_id": auth.client_id,
        "token_url": auth.token_url,
        "alg": auth.alg,
        "kid": auth.kid,
        "requested": auth.scopes,
        "granted": " ".join(granted),
        "missing": missing,
        "gather": "$everything" if caps.has_patient_everything else "per-resource searches",
        "searched_types": searched,
        "polled_by_last_updated": polled,
        "polled_by_export": exported,
    }
    _emit(report, compact=False)
    if missing:
        sys.exit(1)

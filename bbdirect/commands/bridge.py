"""``bbdirect serve`` / ``bbdirect worker`` / ``bbdirect db upgrade``: run the sidecar.

Thin on purpose: parse options, load the one settings object, call ``fhir_bridge``. ``serve`` is the
embedded mode (API + web pages + change detectors + local workers in one process, waitress as the
production WSGI server); ``worker`` adds job workers (procrastinate on PostgreSQL, or local threads on the
same SQLite file); ``db upgrade`` applies the Alembic migrations (and procrastinate's schema on PostgreSQL).
"""

from __future__ import annotations

import json
import logging
import signal
import sys

import click

CONFIG_HELP = "Config file (TOML or YAML); BBDIRECT_* environment variables override it."


def _settings(config: str | None):
    from fhir_bridge.config import ConfigError, load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _term_as_interrupt() -> None:
    """SIGTERM (docker stop, systemd) stops as cleanly as Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--host", help="Override server.host.")
@click.option("--port", type=int, help="Override server.port.")
@click.option("--workers", type=int, help="Override pipeline.workers (local worker threads).")
def serve(config: str | None, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the sidecar: REST API, web pages, change detectors and workers (waitress)."""
    import waitress

    from fhir_bridge.app import create_app

    settings = _settings(config)
    overrides = {
        k: v
        for k, v in {"server_host": host, "server_port": port, "pipeline_workers": workers}.items()
        if v is not None
    }
    if overrides:
        settings = settings.replace(**overrides)
    _logging(settings.server_log_level)
    app = create_app(settings)
    sidecar = app.extensions["bbdirect"]
    sidecar.start()
    _term_as_interrupt()
    click.echo(
        f"bbdirect sidecar on http://{settings.server_host}:{settings.server_port}"
        f" ({settings.queue_backend} queue)",
        err=True,
    )
    try:
        waitress.serve(
            app,
            host=settings.server_host,
            port=settings.server_port,
            threads=settings.server_threads,
            ident="bbdirect",
        )
    except KeyboardInterrupt:
        pass
    finally:
        sidecar.stop()


@click.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option(
    "--concurrency",
    type=int,
    default=None,
    help="Jobs run at once by this process (default pipeline.workers).",
)
def worker(config: str | None, concurrency: int | None) -> None:
    """Run job workers only: procrastinate on PostgreSQL, local threads on SQLite."""
    from fhir_bridge.app import build_sidecar

    settings = _settings(config)
    _logging(settings.server_log_level)
    sidecar = build_sidecar(settings)
    count = concurrency or max(1, settings.pipeline_workers)
    _term_as_interrupt()
    try:
        if settings.queue_backend == "procrastinate":
            from fhir_bridge.pipeline.pgqueue import run_worker

            run_worker(sidecar, concurrency=count)
        else:
            from fhir_bridge.pipeline.runner import LocalRunner

            LocalRunner(sidecar.pipeline, threads=count, tick=settings.pipeline_tick_seconds).run_forever()
    except KeyboardInterrupt:
        pass


@click.group()
def db() -> None:
    """Database schema (Alembic migrations shipped in the package)."""


@db.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--revision", default="head", show_default=True)
def upgrade(config: str | None, revision: str) -> None:
    """Apply the migrations up to REVISION (idempotent)."""
    from fhir_bridge.db import Database, current_revision

    settings = _settings(config)
    database = Database(settings.database_url)
    database.upgrade(revision)
    queue_schema = False
    if settings.queue_backend == "procrastinate":
        from fhir_bridge.pipeline.pgqueue import apply_schema

        queue_schema = apply_schema(settings)
    click.echo(
        json.dumps({"revision": current_revision(database.engine), "queue_schema_installed": queue_schema})
    )
    database.dispose()


@db.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
def current(config: str | None) -> None:
    """Print the database's current revision."""
    from fhir_bridge.db import Database, current_revision

    database = Database(_settings(config).database_url)
    click.echo(json.dumps({"revision": current_revision(database.engine)}))
    database.dispose()

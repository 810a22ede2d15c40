"""A kill -9 at any moment of the first schema upgrade leaves a database the next start upgrades (issue 14 #2).

The real ``bbdirect db upgrade`` runs in a child process that SIGKILLs itself right after its N-th SQL
statement (a SQLAlchemy cursor event installed by the small launcher below, test-side only: production
code has no hook). N runs over every statement of a complete upgrade, so every point between two
statements is hit — including the one the issue reports (tables created, no ``alembic_version`` row).
Then a plain ``bbdirect db upgrade`` must succeed and leave exactly the schema of an uninterrupted run,
and the database must work (the append-only audit trigger included).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

#: Runs ``bbdirect db upgrade`` and kills the process (SIGKILL, no cleanup) after the KILL_AT-th statement.
#: With KILL_AT=0 it only counts the statements of a complete run into COUNT_FILE.
LAUNCHER = """
import atexit, os, runpy, signal, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

kill_at = int(os.environ["KILL_AT"])
seen = 0

def after_statement(*args, **kwargs):
    global seen
    seen += 1
    if seen == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

event.listen(Engine, "after_cursor_execute", after_statement)
if not kill_at:
    atexit.register(lambda: open(os.environ["COUNT_FILE"], "w").write(str(seen)))
sys.argv = ["bbdirect", "db", "upgrade"]
runpy.run_module("bbdirect.cli", run_name="__main__")
"""


def _env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.getcwd(), "BBDIRECT_DATABASE_URL": url, **extra}


def _upgrade(url: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "bbdirect.cli", "db", "upgrade"],
        env=_env(url),
        capture_output=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    return json.loads(run.stdout.decode().strip().splitlines()[-1])


def _killed_upgrade(url: str, kill_at: int, count_file: Path | None = None) -> int:
    extra = {"KILL_AT": str(kill_at), "COUNT_FILE": str(count_file or "")}
    run = subprocess.run(
        [sys.executable, "-c", LAUNCHER], env=_env(url, **extra), capture_output=True, timeout=120
    )
    return run.returncode


def _sqlite_schema(path: Path) -> set[tuple[str, str, str | None]]:
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
        schema = {(r.type, r.name, r.sql) for r in rows}
    engine.dispose()
    return schema


def _works(url: str) -> None:
    """The upgraded database takes the product's writes, and its audit log is still append-only."""
    from fhir_bridge import audit
    from fhir_bridge.db import AuditRecord, Database

    db = Database(url)
    with db.session() as s:
        audit.record(
            s,
            actor=audit.SYSTEM,
            action="db.check",
            entity_type="database",
            entity_id="1",
            patient_id=None,
            outcome="success",
            detail={},
        )
    with db.session() as s:
        assert s.query(AuditRecord).count() == 1
    with pytest.raises(Exception, match="append-only"), db.session() as s:
        s.execute(text("DELETE FROM audit_log"))
    db.dispose()


@pytest.mark.slow
def test_a_kill_after_any_statement_of_the_first_sqlite_upgrade_heals_at_the_next_start(tmp_path):
    reference = tmp_path / "reference.sqlite3"
    count_file = tmp_path / "count"
    assert _killed_upgrade(f"sqlite:///{reference}", 0, count_file) == 0
    statements = int(count_file.read_text())
    expected = _sqlite_schema(reference)
    assert statements > 10 and any(name == "alembic_version" for _, name, _ in expected)

    for kill_at in range(1, statements + 1):
        path = tmp_path / f"killed-{kill_at}.sqlite3"
        url = f"sqlite:///{path}"
        assert _killed_upgrade(url, kill_at) == -signal.SIGKILL, kill_at
        assert _upgrade(url)["revision"] == "0001", kill_at
        assert _sqlite_schema(path) == expected, kill_at
        path.unlink()
        for leftover in tmp_path.glob(f"killed-{kill_at}.sqlite3-*"):
            leftover.unlink()
    _works(f"sqlite:///{reference}")


def test_a_database_left_half_created_by_an_older_version_is_repaired_at_start(tmp_path):
    """Files bricked before this fix (some empty tables, no version row) heal instead of failing forever
    with "table audit_log already exists"."""
    path = tmp_path / "bricked.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("CREATE TABLE audit_log (id INTEGER NOT NULL PRIMARY KEY, at DATETIME NOT NULL)"))
        conn.execute(text("CREATE INDEX ix_audit_log_at ON audit_log (at)"))
    engine.dispose()
    assert _upgrade(f"sqlite:///{path}")["revision"] == "0001"
    reference = tmp_path / "reference.sqlite3"
    _upgrade(f"sqlite:///{reference}")
    assert _sqlite_schema(path) == _sqlite_schema(reference)
    _works(f"sqlite:///{path}")


def test_a_half_created_database_holding_rows_is_left_alone(tmp_path):
    """The repair only ever drops empty tables: a database with data and no version row is an operator's
    matter (stamp or restore), never silently emptied."""
    path = tmp_path / "odd.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE audit_log (id INTEGER NOT NULL PRIMARY KEY, at DATETIME NOT NULL)"))
        conn.execute(text("INSERT INTO audit_log (id, at) VALUES (1, '2026-01-01 00:00:00')"))
    engine.dispose()
    run = subprocess.run(
        [sys.executable, "-m", "bbdirect.cli", "db", "upgrade"],
        env=_env(f"sqlite:///{path}"),
        capture_output=True,
        timeout=120,
    )
    assert run.returncode != 0 and b"already exists" in run.stderr
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == 1
    engine.dispose()


@pytest.mark.service("postgres")
@pytest.mark.slow
def test_a_kill_during_the_first_postgresql_upgrade_heals_at_the_next_start(postgres, tmp_path):
    """PostgreSQL DDL is transactional: the same kills leave nothing half-done, the queue schema included."""
    from fhir_bridge.db import sqlalchemy_url

    count_file = tmp_path / "count"
    assert _killed_upgrade(postgres.create_database("upg_count"), 0, count_file) == 0
    statements = int(count_file.read_text())
    # Every point would be ~2 s each on this machine: a spread of points, first and last included.
    points = sorted(
        {1, 2, 3, statements // 4, statements // 2, (3 * statements) // 4, statements - 1, statements}
    )
    for kill_at in points:
        url = postgres.create_database(f"upg_kill_{kill_at}")
        assert _killed_upgrade(url, kill_at) == -signal.SIGKILL, kill_at
        result = _upgrade(url)
        assert result["revision"] == "0001", kill_at
        engine = create_engine(sqlalchemy_url(url))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar(), (
                kill_at
            )
        engine.dispose()
        _works(url)

"""Database access: engine + session factory, and the Alembic migrations shipped inside the package.

Why migrations in the package: ``bbdirect db upgrade`` (and the embedded start) must work from an installed
wheel with no source tree, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:  # alembic is imported when a migration runs, not at every start-up
    from alembic.config import Config

import logging

from sqlalchemy import inspect, select, text
from sqlalchemy.pool import NullPool

from fhir_bridge.db.models import (
    AuditRecord,
    Authorization,
    Base,
    PendingChange,
    SourceState,
    Transmission,
    new_id,
    utcnow,
)

__all__ = [
    "AuditRecord",
    "Authorization",
    "Base",
    "Database",
    "PendingChange",
    "SourceState",
    "Transmission",
    "new_id",
    "upgrade",
    "utcnow",
]

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(url: str) -> str:
    """Pick the psycopg 3 driver for PostgreSQL URLs (the only PostgreSQL driver installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _make_engine(url: str) -> Engine:
    url = sqlalchemy_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the API read while a worker writes; foreign keys are off by default in SQLite.
            # synchronous=NORMAL (under WAL): a commit is written to the WAL but not fsynced (the WAL is
            # fsynced at each checkpoint). A committed transaction survives the process being killed
            # (kill -9, OOM, crash: the OS has the pages); only a power loss or kernel crash may roll back
            # the last commits, to a consistent state. Why: the writers queue for SQLite's one write lock,
            # and an fsync per commit (2-12 ms on this machine's disk, ~3 commits per message) was the
            # largest part of the time that lock is held. Deployments that must survive power loss
            # without re-sending run on PostgreSQL. See bench/README.md, Sidecar.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


@dataclass
class WriterStats:
    """Counters of :meth:`Database.writer` transactions (the bench reads them per message)."""

    transactions: int = 0
    #: Seconds spent waiting for the write lock (this process's, then SQLite's ``BEGIN IMMEDIATE``).
    lock_wait_s: float = 0.0
    #: Seconds the write lock was held (from acquired to committed or rolled back).
    held_s: float = 0.0


class Database:
    """One engine and its session factory; ``with db.session() as s:`` commits, or rolls back on error."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        #: Serialises this process's writer transactions on SQLite (see :meth:`writer`).
        self._write_lock = threading.Lock()
        self.writer_stats = WriterStats()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self._factory()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    @contextmanager
    def writer(self) -> Iterator[Session]:
        """A session for a transaction that will write: like :meth:`session`, but on SQLite it holds the
        database's write lock from its first statement to its commit.

        Why: SQLite has one writer at a time. A deferred transaction that reads first and writes later
        fails outright (``SQLITE_BUSY``, no retry) when another connection committed meanwhile, and the
        waits that can be retried go through SQLite's busy handler, which sleeps 1, 2, 5 … 100 ms between
        tries — several worker threads contending oversleep most of their time (profiled: about two
        thirds of the workers' wall time). So the writers of this process queue on a lock here (handed
        over as soon as it is released) and then take SQLite's lock with ``BEGIN IMMEDIATE`` (which only
        waits for other processes). On PostgreSQL this is :meth:`session` (row locks, no global writer).
        """
        if not self.is_sqlite:
            with self.session() as s:
                yield s
            return
        stats = self.writer_stats
        started = time.perf_counter()
        with self._write_lock:
            acquired = started
            try:
                with self.session() as s:  # commit (or rollback) inside the lock, counted as held
                    s.connection().exec_driver_sql("BEGIN IMMEDIATE")
                    acquired = time.perf_counter()
                    stats.lock_wait_s += acquired - started
                    yield s
            finally:
                stats.transactions += 1
                stats.held_s += time.perf_counter() - acquired

    def upgrade(self, revision: str = "head") -> None:
        upgrade(self.engine, revision)

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations up to ``revision`` (idempotent), all of them in one transaction.

    Why one transaction: a process killed during its first start (``kill -9``, power loss) must leave either
    the old schema or the new one with its ``alembic_version`` row, never some tables and no version (every
    later start then failed with "table audit_log already exists"). PostgreSQL's DDL is transactional as
    is; on SQLite the migrations run on a separate connection where pysqlite's own transaction handling is
    off and we issue ``BEGIN IMMEDIATE`` ourselves (SQLAlchemy's documented recipe for transactional DDL on
    pysqlite), so SQLite's transactional DDL covers every CREATE. ``IMMEDIATE`` also makes a second process
    starting at the same moment wait, then find the schema current.
    """
    from alembic import command

    if engine.dialect.name != "sqlite" or _in_memory(engine):
        command.upgrade(alembic_config(engine), revision)
        return
    migrator = _transactional_sqlite_engine(engine)
    try:
        command.upgrade(alembic_config(migrator), revision)
    finally:
        migrator.dispose()


def _in_memory(engine: Engine) -> bool:
    """An in-memory SQLite database lives in its connection: a second engine would see another one."""
    return engine.url.database in (None, "", ":memory:")


def _transactional_sqlite_engine(engine: Engine) -> Engine:
    """An engine on the same SQLite file whose transactions (DDL included) are real SQLite transactions."""

    migrator = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": 30})

    @event.listens_for(migrator, "connect")
    def _no_pysqlite_transactions(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # outside any transaction, as SQLite requires
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
        dbapi_conn.isolation_level = None  # pysqlite no longer commits around DDL behind our back

    @event.listens_for(migrator, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return migrator


def repair_partial_first_upgrade(connection: Connection) -> list[str]:
    """Drop what an interrupted first upgrade of an earlier version left: our tables, all empty, and no
    version row. Returns the dropped tables (usually none).

    Why: before migrations ran in one transaction, a kill during the very first start left such a file, and
    every later start failed with "table ... already exists". Only a database that provably never held data
    is touched: every table one of ours, every one empty, no ``alembic_version`` row. Anything else is left
    to the operator (the upgrade then fails as before). Runs inside the upgrade's transaction.
    """

    names = set(inspect(connection).get_table_names())
    if (
        "alembic_version" in names
        and connection.execute(text("SELECT count(*) FROM alembic_version")).scalar()
    ):
        return []
    ours = names - {"alembic_version"}
    if not ours or not ours <= set(Base.metadata.tables):
        return []
    tables = [t for t in reversed(Base.metadata.sorted_tables) if t.name in ours]
    if any(connection.execute(select(1).select_from(t).limit(1)).first() for t in tables):
        return []
    for table in tables:
        table.drop(connection)  # its indexes and triggers go with it
    dropped = [t.name for t in tables]
    if "alembic_version" in names:  # empty: alembic creates it again, in this same transaction
        connection.execute(text("DROP TABLE alembic_version"))
        dropped.append("alembic_version")

    logging.getLogger(__name__).warning(
        "dropped the empty tables an interrupted first upgrade left (%s); upgrading again", ", ".join(dropped)
    )
    return dropped


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/DELETE: ``Session.execute`` returns a ``CursorResult`` for DML at run time,
    which SQLAlchemy's annotations type as the plain ``Result``."""
    return cast("CursorResult[Any]", result).rowcount

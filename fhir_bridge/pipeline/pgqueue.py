"""Scale-out: the pipeline's jobs on procrastinate (a PostgreSQL task queue), for many worker processes.

Why procrastinate and not our own loop: fetching a job is procrastinate's ``SELECT ... FOR UPDATE SKIP
LOCKED``, with LISTEN/NOTIFY wake-ups, worker heartbeats and scheduled jobs — the distributed part is the
library's, not ours. Our ``transmissions`` row stays the source of truth: a task only calls
:meth:`Pipeline.run_job`, whose compare-and-set claim makes a duplicate task harmless.

Tasks:
- ``bbdirect.run_transmission(transmission_id)`` — run one job; on ``retrying`` it re-defers itself at
  the job's ``next_at`` (queueing lock ``tx:<id>``: at most one waiting task per job).
- ``bbdirect.flush_patient(patient_id)`` — close a debounce window when due (lock ``win:<id>``); if a later
  change moved the window, re-defer at the new due time.
- ``bbdirect.sweep`` (periodic, every ``pipeline.sweep_seconds``) — reconcile: due windows, due jobs and
  jobs whose worker died (lease expired) get their task again; delivery notices that never came time out.
- ``bbdirect.recover_stalled`` (periodic, same period, and once at worker start) — procrastinate's own
  stalled-job recovery: tasks left in ``doing`` by a worker whose heartbeat stopped (``kill -9``, lost
  machine) are retried, or dropped when the sweep already queued their twin. Without it those rows stayed in
  ``doing`` forever; the sweep remains the safety net that gets the *work* done either way.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException, UniqueViolation
from procrastinate.jobs import Status
from sqlalchemy import select

from fhir_bridge.config import Settings
from fhir_bridge.db.models import PendingChange, Transmission, utcnow
from fhir_bridge.pipeline import jobs
from fhir_bridge.pipeline.runner import worker_name
from fhir_bridge.pipeline.states import State

if TYPE_CHECKING:
    from fhir_bridge.pipeline.service import Pipeline

log = logging.getLogger(__name__)

QUEUE = "bbdirect"

#: The sidecar of this worker process (set by ``bbdirect worker`` before the worker starts).
_SIDECAR: Any = None
_OWNER = worker_name()


def conninfo(database_url: str) -> str:
    """libpq URL from a SQLAlchemy URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    _scheme, sep, rest = database_url.partition("://")
    return "postgresql://" + rest if sep else database_url


def make_app(settings: Settings) -> procrastinate.App:
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo(settings.database_url))
    )

    @app.task(name="bbdirect.run_transmission", queue=QUEUE)
    def run_transmission(transmission_id: str) -> None:
        pipeline = _pipeline()
        result = pipeline.run_job(transmission_id, _OWNER)
        if result.state is State.RETRYING:
            _defer_job(app, transmission_id, _next_at(pipeline, transmission_id))

    @app.task(name="bbdirect.flush_patient", queue=QUEUE)
    def flush_patient(patient_id: str) -> None:
        pipeline = _pipeline()
        created = pipeline.flush_window(patient_id)
        if created:
            return
        with pipeline.db.session() as s:
            window = s.get(PendingChange, patient_id)
            due = window.due_at if window is not None else None
        if due is not None:
            _defer_flush(app, patient_id, due)

    every = settings.pipeline_sweep_seconds
    # croniter's optional sixth field is seconds.
    cron = "* * * * *" if every >= 60 else f"* * * * * */{every}"

    @app.periodic(cron=cron, periodic_id="sweep")
    @app.task(name="bbdirect.sweep", queue=QUEUE, queueing_lock="sweep")
    def sweep(timestamp: int) -> None:
        reconcile(app, _pipeline())

    stalled_after = stalled_worker_timeout(settings)

    @app.periodic(cron=cron, periodic_id="recover_stalled")
    @app.task(name="bbdirect.recover_stalled", queue=QUEUE, queueing_lock="recover_stalled")
    async def recover_stalled(timestamp: int) -> None:
        await recover_stalled_jobs(app, stalled_after)

    return app


def stalled_worker_timeout(settings: Settings) -> float:
    """Seconds without a heartbeat after which procrastinate counts a worker as dead.

    Derived from ``pipeline.lease_seconds`` (our own "a worker died" delay) so one setting governs crash
    recovery, but kept within 5 to 30 s: below 5 s a live worker on a loaded machine could miss it and have
    its running task retried (harmless — the job's compare-and-set claim refuses a second runner — but
    noisy); 30 s is procrastinate's default.
    """
    return min(30.0, max(5.0, settings.pipeline_lease_seconds))


async def recover_stalled_jobs(app: procrastinate.App, seconds_since_heartbeat: float) -> int:
    """Retry (or drop) the ``doing`` tasks of workers whose heartbeat is older than the given seconds.

    procrastinate's documented recovery (``JobManager.get_stalled_jobs`` + ``retry_job``). A retried task is
    safe: it only calls :meth:`Pipeline.run_job`, whose claim is a compare-and-set on the transmission. When
    the sweep already queued a task under the same queueing lock (``tx:<id>``), procrastinate refuses a
    second waiting one (unique violation): then the stalled row is deleted, the waiting twin does the work.
    Returns how many stalled tasks were handled.
    """
    manager = app.job_manager
    handled = 0
    for job in await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=seconds_since_heartbeat):
        assert job.id is not None
        try:
            await manager.retry_job(job)
            log.info("retried stalled task %s (%s) of a dead worker", job.id, job.task_name)
        except UniqueViolation:
            await manager.finish_job_by_id_async(job.id, status=Status.FAILED, delete_job=True)
            log.info("dropped stalled task %s (%s): a waiting twin holds its lock", job.id, job.task_name)
        except ConnectorException:  # another worker recovered it first
            continue
        handled += 1
    return handled


async def _recover_at_start(settings: Settings) -> int:
    app = make_app(settings)
    async with app.open_async():
        return await recover_stalled_jobs(app, stalled_worker_timeout(settings))


def _pipeline() -> Pipeline:
    if _SIDECAR is None:
        raise RuntimeError("the worker's sidecar is not set (start workers with `bbdirect worker`)")
    return _SIDECAR.pipeline


def set_sidecar(sidecar: Any) -> None:
    global _SIDECAR
    _SIDECAR = sidecar


def _next_at(pipeline: Pipeline, job_id: str) -> datetime | None:

    with pipeline.db.session() as s:
        return s.scalar(select(Transmission.next_at).where(Transmission.id == job_id))


def _defer_job(app: procrastinate.App, job_id: str, at: datetime | None = None) -> None:
    try:
        app.configure_task(
            "bbdirect.run_transmission",
            queueing_lock=f"tx:{job_id}",
            schedule_at=at if at and at > utcnow() else None,
        ).defer(transmission_id=job_id)
    except AlreadyEnqueued:
        pass  # a task for this job is already waiting: it will run it


def _defer_flush(app: procrastinate.App, patient_id: str, at: datetime) -> None:
    try:
        app.configure_task("bbdirect.flush_patient", queueing_lock=f"win:{patient_id}", schedule_at=at).defer(
            patient_id=patient_id
        )
    except AlreadyEnqueued:
        pass  # the waiting task re-defers itself if the window moved


def reconcile(app: procrastinate.App, pipeline: Pipeline) -> None:
    """Give every due window and due or orphaned job a task (idempotent thanks to the queueing locks)."""
    now = pipeline.clock()
    with pipeline.db.session() as s:
        windows = [w.patient_id for w in s.scalars(select(PendingChange).where(PendingChange.due_at <= now))]
        job_ids = jobs.due_ids(s, now, limit=1000)
    for patient_id in windows:
        _defer_flush(app, patient_id, now)
    for job_id in job_ids:
        _defer_job(app, job_id)
    pipeline.expire_mdn()


class ProcrastinateQueue:
    """The pipeline's Queue in the API process: defers tasks for new jobs and new windows."""

    def __init__(self, settings: Settings):
        self.app = make_app(settings)
        self._opened = False

    def _open(self) -> procrastinate.App:
        if not self._opened:
            self.app.open()
            self._opened = True
        return self.app

    def jobs_created(self, ids: list[str], at: datetime) -> None:
        app = self._open()
        for job_id in ids:
            _defer_job(app, job_id)

    def window_opened(self, patient_id: str, due_at: datetime) -> None:
        _defer_flush(self._open(), patient_id, due_at)

    def close(self) -> None:
        if self._opened:
            self.app.close()
            self._opened = False


def apply_schema(settings: Settings) -> bool:
    """Install procrastinate's tables once (``bbdirect db upgrade``); False when they already exist."""
    import psycopg

    with psycopg.connect(conninfo(settings.database_url)) as conn:
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
        exists = bool(row and row[0])
    if exists:
        return False
    app = make_app(settings)
    with app.open():
        app.schema_manager.apply_schema()
    return True


def run_worker(sidecar: Any, *, concurrency: int = 1, wait: bool = True, name: str | None = None) -> None:
    """Run a procrastinate worker in this process until stopped (SIGINT/SIGTERM)."""
    set_sidecar(sidecar)
    settings = sidecar.settings
    # Tasks a previous worker left in ``doing`` when it died: recovered now rather than at the first period.
    asyncio.run(_recover_at_start(settings))
    app = make_app(settings)
    stalled_after = stalled_worker_timeout(settings)
    app.run_worker(
        queues=[QUEUE],
        concurrency=concurrency,
        wait=wait,
        name=name or _OWNER,
        fetch_job_polling_interval=max(0.2, settings.pipeline_tick_seconds),
        delete_jobs="successful",
        # Heartbeats are what get_stalled_jobs judges by: three per timeout, so one late beat is no death.
        update_heartbeat_interval=stalled_after / 3,
        stalled_worker_timeout=stalled_after,
    )

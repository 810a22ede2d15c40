"""Local workers: threads in this process that close debounce windows and run due jobs from the database.

Why this exists next to procrastinate: the embedded mode runs on SQLite, which procrastinate does not
support. Nothing here is a distributed scheduler: each step is a compare-and-set on the job row, so two
threads (or a second ``bbdirect worker`` on the same SQLite file) cannot both run one job, and a job whose
worker died is taken over once its lease expires.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from fhir_bridge.pipeline.service import Pipeline

log = logging.getLogger(__name__)


def worker_name(index: int = 0) -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{index}:{uuid.uuid4().hex[:6]}"


class LocalRunner:
    def __init__(self, pipeline: Pipeline, threads: int = 2, tick: float = 0.5, sweep_every: float = 30.0):
        self.pipeline = pipeline
        self.threads = threads
        self.tick = tick
        self.sweep_every = sweep_every
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> LocalRunner:
        for index in range(self.threads):
            t = threading.Thread(target=self._loop, args=(worker_name(index), index == 0), daemon=True)
            t.name = f"bbdirect-worker-{index}"
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.pipeline.wakeup.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def _loop(self, owner: str, sweeper: bool) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            busy = False
            try:
                busy = any(r.state is not None for r in self.pipeline.run_due(owner))
                if sweeper and time.monotonic() - last_sweep > self.sweep_every:
                    last_sweep = time.monotonic()
                    self.pipeline.expire_mdn()
            except Exception:  # a database hiccup must not kill the worker thread
                log.exception("worker step failed")
            if not busy:
                self.pipeline.wakeup.wait(self.tick)
                self.pipeline.wakeup.clear()

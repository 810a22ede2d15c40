"""Prometheus metrics computed from the database at scrape time.

Why from the database: in scale-out mode the sends happen in other processes (on other machines); counting
from the durable tables gives the same numbers whichever process is scraped. ``bbdirect_sends_total`` counts
audit rows (append-only, so it is monotonic like a counter); latency is change-seen → handed to SMTP for
change-triggered jobs and created → handed to SMTP for the others, over the most recent sends.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from fhir_bridge.db import AuditRecord, Database, Transmission
from fhir_bridge.pipeline.states import State

BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LATENCY_WINDOW = 10_000


class PipelineCollector(Collector):
    def __init__(self, db: Database):
        self.db = db

    def collect(self) -> Iterator:
        with self.db.session() as s:
            by_state = dict(
                s.execute(select(Transmission.state, func.count()).group_by(Transmission.state)).all()
            )
            outcomes = dict(
                s.execute(
                    select(AuditRecord.outcome, func.count())
                    .where(AuditRecord.action == "send.attempt")
                    .group_by(AuditRecord.outcome)
                ).all()
            )
            recent = s.execute(
                select(Transmission.created_at, Transmission.change_at, Transmission.sent_at)
                .where(Transmission.sent_at.is_not(None))
                .order_by(Transmission.sent_at.desc())
                .limit(LATENCY_WINDOW)
            ).all()
        depth = GaugeMetricFamily(
            "bbdirect_queue_depth", "Transmissions not yet handed to SMTP, by state.", labels=["state"]
        )
        for state in (State.QUEUED, State.RETRYING, State.BUILDING, State.SENDING):
            depth.add_metric([str(state)], by_state.get(str(state), 0))
        yield depth
        jobs = GaugeMetricFamily("bbdirect_transmissions", "Transmissions by state.", labels=["state"])
        for state in State:
            jobs.add_metric([str(state)], by_state.get(str(state), 0))
        yield jobs
        sends = CounterMetricFamily("bbdirect_sends", "Send attempts by outcome.", labels=["outcome"])
        for outcome in ("success", "retry", "failure", "skipped"):
            sends.add_metric([outcome], outcomes.get(outcome, 0))
        yield sends
        # The query keeps sent_at IS NOT NULL rows only; created_at is NOT NULL in the schema.
        latencies = [(sent - (change or created)).total_seconds() for created, change, sent in recent if sent]
        buckets: list[tuple[str, float]] = [(str(b), sum(1 for x in latencies if x <= b)) for b in BUCKETS]
        buckets.append(("+Inf", len(latencies)))
        hist = HistogramMetricFamily(
            "bbdirect_send_latency_seconds",
            f"Change (or request) to SMTP acceptance, last {LATENCY_WINDOW} sends.",
        )
        hist.add_metric([], buckets, sum_value=sum(latencies))
        yield hist

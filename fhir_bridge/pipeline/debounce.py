"""Debounce and coalescing of change events, per patient, in the database.

Why in the database: a burst of 20 changes may arrive at any of several processes (rest-hook on one, poller
on another); one row per patient collects them, and its ``due_at`` moves forward with each change. When a
quiet period passes with no new change the window closes and yields ONE transmission per authorization.
Sources may report the same change twice (rest-hook and polling together): the window absorbs duplicates.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fhir_bridge.db import rowcount
from fhir_bridge.db.models import PendingChange, new_id

_MAX_SOURCES_LEN = 200


def note_change(session: Session, patient_id: str, source: str, now: datetime, quiet: float) -> datetime:
    """Record a change of ``patient_id``; returns the window's new due time (now + quiet period)."""
    due = now + timedelta(seconds=quiet)
    for _ in range(3):
        row = session.get(PendingChange, patient_id, with_for_update=True)
        if row is not None:
            sources = set(filter(None, row.sources.split(","))) | {source}
            session.execute(
                update(PendingChange)
                .where(PendingChange.patient_id == patient_id)
                .values(
                    last_change_at=now,
                    due_at=max(due, row.due_at),
                    changes=PendingChange.changes + 1,
                    sources=",".join(sorted(sources))[:_MAX_SOURCES_LEN],
                )
            )
            return max(due, row.due_at)
        try:
            with session.begin_nested():
                session.add(
                    PendingChange(
                        patient_id=patient_id,
                        window_id=new_id(),
                        first_change_at=now,
                        last_change_at=now,
                        due_at=due,
                        changes=1,
                        sources=source[:_MAX_SOURCES_LEN],
                    )
                )
                session.flush()
            return due
        except IntegrityError:  # another process opened the window first: update theirs
            continue
    raise RuntimeError("could not record the change (contention)")


def due_windows(session: Session, now: datetime, limit: int = 50) -> list[PendingChange]:
    return list(
        session.scalars(
            select(PendingChange)
            .where(PendingChange.due_at <= now)
            .order_by(PendingChange.due_at)
            .limit(limit)
        )
    )


def close(session: Session, window: PendingChange) -> bool:
    """Delete the window if it is unchanged since read (a change that arrived meanwhile keeps it open)."""
    result = session.execute(
        delete(PendingChange).where(
            PendingChange.patient_id == window.patient_id,
            PendingChange.window_id == window.window_id,
            PendingChange.due_at == window.due_at,
        )
    )
    return rowcount(result) == 1

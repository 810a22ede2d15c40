"""The transmission state machine (pure: values in, values out).

    queued ──▶ building ──▶ sending ──▶ sent ──▶ processed ──▶ dispatched
       │          │  │         │         │          │
       │          │  └▶ skipped (clinical content unchanged)
       ▼          ▼            ▼         ▼          ▼
    cancelled  retrying ◀──────┘       failed (reason)
    (revoked, or superseded by a newer job of the authorization — from sending too)
                  │
                  └──▶ building | sending (resume with the stored message) | cancelled | failed

Why explicit: every writer (worker, MDN handler, revoke, crash recovery) moves a job only along these
arrows, with a compare-and-set on the old state in the database, so two writers can never both win.
``sending`` is the line revocation cannot cross: the message has been handed to SMTP. Per authorization,
messages go out in creation order: a newer job retires the older ones not yet sent (``cancelled``, reason
``superseded``), so a stale record never arrives after a newer one (``jobs.delivery_gate``).
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    QUEUED = "queued"
    BUILDING = "building"
    SENDING = "sending"
    SENT = "sent"
    PROCESSED = "processed"
    DISPATCHED = "dispatched"
    RETRYING = "retrying"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


S = State

TRANSITIONS: dict[State, frozenset[State]] = {
    S.QUEUED: frozenset({S.BUILDING, S.CANCELLED}),
    # building -> building: a crashed worker's lease expired and another worker took the job over.
    S.BUILDING: frozenset({S.BUILDING, S.SENDING, S.SKIPPED, S.RETRYING, S.FAILED, S.CANCELLED}),
    # sending -> sending: resumed after a crash, re-sending the identical stored message.
    # sending -> cancelled: only when superseded by a newer job of the same authorization, decided before
    # the stored message is (re-)handed to SMTP (jobs.delivery_gate); revocation never takes this arrow.
    # sending -> retrying: also when an older message of the same authorization is still on the wire.
    S.SENDING: frozenset({S.SENDING, S.SENT, S.RETRYING, S.FAILED, S.CANCELLED}),
    S.RETRYING: frozenset({S.BUILDING, S.SENDING, S.CANCELLED, S.FAILED}),
    # An MDN "processed" may be overtaken by "dispatched"; a failure notice or timeout fails the job.
    S.SENT: frozenset({S.PROCESSED, S.DISPATCHED, S.FAILED}),
    S.PROCESSED: frozenset({S.DISPATCHED, S.FAILED}),
    S.DISPATCHED: frozenset(),
    S.FAILED: frozenset(),
    S.SKIPPED: frozenset(),
    S.CANCELLED: frozenset(),
}

#: States from which a worker may pick the job up (when due).
RUNNABLE = frozenset({S.QUEUED, S.RETRYING})
#: States a worker holds under a lease; an expired lease means the worker died.
LEASED = frozenset({S.BUILDING, S.SENDING})
#: Not yet handed to SMTP: revocation cancels these.
CANCELLABLE = frozenset({S.QUEUED, S.RETRYING, S.BUILDING})
#: Waiting for a delivery notice.
AWAITING_MDN = frozenset({S.SENT, S.PROCESSED})
TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
#: Counted as the queue depth (work not yet handed over).
PENDING = RUNNABLE | LEASED


class IllegalTransition(ValueError):
    code = "illegal_transition"


def can_move(old: str, new: str) -> bool:
    return State(new) in TRANSITIONS[State(old)]


def check(old: str, new: str) -> State:
    if not can_move(old, new):
        raise IllegalTransition(f"{old} -> {new}")
    return State(new)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Delay before retry number ``attempt`` (1-based): base·2^(attempt-1), capped. Deterministic on purpose
    (tests can reason about it); jobs that failed at different times still retry at different times.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    return min(cap, base * (2 ** (attempt - 1)))

"""Several detectors, one stream of changes: drop the second report of the same change.

A new Observation on HAPI may be seen by the rest-hook *and* by the next poll. Both reports carry the same
(patient, type, id, version), so the second is dropped within ``window``. Reports that do not say what changed
(pings, empty notifications) always pass: the pipeline's debounce coalesces them anyway.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fhir_bridge.sources.events import ChangeEvent


class ChangeFanIn:
    """Callable handed to every detector as ``on_change``; forwards each distinct change once.

    Memory is bounded: identities older than ``window`` seconds are forgotten, and at most ``max_entries``
    are kept (oldest dropped first).
    """

    def __init__(
        self,
        on_change: Callable[[ChangeEvent], None],
        *,
        window: float = 600.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.on_change = on_change
        self.window = window
        self.max_entries = max_entries
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str, str, str], float] = OrderedDict()
        self._lock = threading.Lock()
        self.passed = 0
        self.dropped = 0

    def __call__(self, event: ChangeEvent) -> None:
        if self.is_duplicate(event):
            return
        self.on_change(event)

    def is_duplicate(self, event: ChangeEvent) -> bool:
        """Record ``event``; True when the same change was already passed on within the window."""
        identity = event.identity()
        now = self.clock()
        with self._lock:
            self._forget_older_than(now - self.window)
            if identity is not None and identity in self._seen:
                self.dropped += 1
                return True
            if identity is not None:
                self._seen[identity] = now
                while len(self._seen) > self.max_entries:
                    self._seen.popitem(last=False)
            self.passed += 1
            return False

    def _forget_older_than(self, limit: float) -> None:
        while self._seen:
            identity, seen_at = next(iter(self._seen.items()))
            if seen_at >= limit:
                return
            del self._seen[identity]

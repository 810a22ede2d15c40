"""How many certificate lookups one principal may start from a web page or the API.

Why: a lookup makes the sidecar talk to servers the address's domain names (DNS, LDAP, IPKIX, AIA, CRL). Each
is bounded by the fetch policy and ``direct.lookup_deadline``; this bounds how many one person (a patient
token, a signed-in user, an API key) can start: at most ``server.lookups_per_minute`` in any sliding minute,
per process. Beyond it the lookup is not made and the caller gets :class:`direct.errors.TooManyLookups`
(HTTP 429 with ``Retry-After`` from the API, a sentence next to the address field on the pages).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from direct.errors import TooManyLookups

WINDOW_SECONDS = 60.0


class LookupLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, principal: str | None) -> None:
        """Count one lookup for ``principal``; raise TooManyLookups when over the limit (0 = no limit)."""
        if not principal or self.per_minute <= 0:
            return
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(principal, deque())
            while hits and now - hits[0] >= WINDOW_SECONDS:
                hits.popleft()
            if len(hits) >= self.per_minute:
                wait = int(WINDOW_SECONDS - (now - hits[0])) + 1
                raise TooManyLookups(retry_after=wait)
            hits.append(now)
            if len(self._hits) > 10_000:  # forget principals idle for a whole window
                for key in [k for k, v in self._hits.items() if not v or now - v[-1] >= WINDOW_SECONDS]:
                    del self._hits[key]

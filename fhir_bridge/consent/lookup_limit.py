"""How many certificate lookups one principal may start from a web page or the API.

Why: a lookup makes the sidecar talk to servers the address's domain names (DNS, LDAP, IPKIX, AIA, CRL). Each
is bounded by the fetch policy and ``direct.lookup_deadline``; this bounds how many one person can start, in
any sliding minute, per process: a patient (token or signed-in page) ``server.lookups_per_minute``, a
signed-in clinician ``server.lookups_per_minute_staff``. API keys are server-side integrators (the EMR
module speaks for a whole practice with one key) and are not limited here. Beyond the limit the lookup is
not made and the caller gets :class:`direct.errors.TooManyLookups` (HTTP 429 with ``Retry-After`` from the
API, a sentence next to the address field on the pages). A principal is ``"<actor type>:<id>"``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from direct.errors import TooManyLookups

WINDOW_SECONDS = 60.0


class LookupLimiter:
    def __init__(self, per_minute: dict[str, int], clock: Callable[[], float] = time.monotonic):
        #: Lookups per minute by actor type ("patient", "clinician"); a type not listed is not limited.
        self.per_minute = per_minute
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, principal: str | None) -> None:
        """Count one lookup for ``principal``; raise TooManyLookups when over the limit (0 = no limit)."""
        limit = self.per_minute.get((principal or "").partition(":")[0], 0)
        if not principal or limit <= 0:
            return
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(principal, deque())
            while hits and now - hits[0] >= WINDOW_SECONDS:
                hits.popleft()
            if len(hits) >= limit:
                wait = int(WINDOW_SECONDS - (now - hits[0])) + 1
                raise TooManyLookups(retry_after=wait)
            hits.append(now)
            if len(self._hits) > 10_000:  # forget principals idle for a whole window
                for key in [k for k, v in self._hits.items() if not v or now - v[-1] >= WINDOW_SECONDS]:
                    del self._hits[key]

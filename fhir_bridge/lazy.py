"""``Lazy``: a service built on first call, once, whichever thread asks first.

Why: the sidecar must start (and answer ``/healthz``) while the FHIR server is down or the Direct identity is
not provisioned yet; its FHIR clients and agent are built when first needed, and a failure there is a job's
or a request's error rather than a dead process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._factory()
            return self._value

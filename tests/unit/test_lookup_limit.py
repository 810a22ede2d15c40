"""The per-principal lookup limit (issue 12 #3): a sliding minute per principal, nothing for anonymous
internal lookups, and a Retry-After that is the time until the oldest lookup leaves the window."""

from __future__ import annotations

import pytest

from direct.errors import TooManyLookups
from fhir_bridge.consent.lookup_limit import LookupLimiter


def test_sliding_minute_per_principal() -> None:
    now = [1000.0]
    limiter = LookupLimiter({"patient": 2}, clock=lambda: now[0])
    limiter.admit("patient:p1")
    now[0] += 10
    limiter.admit("patient:p1")
    with pytest.raises(TooManyLookups) as refused:
        limiter.admit("patient:p1")
    assert refused.value.code == "too_many_lookups" and refused.value.transient
    assert refused.value.retry_after == 51  # the first lookup leaves the window 50 s from now
    limiter.admit("patient:p2")  # another principal has its own window
    limiter.admit(None)  # the sidecar's own lookups (pipeline) are not a principal's
    for _ in range(5):
        limiter.admit("api_key:emr")  # server-side integrators are not limited here
    now[0] += 50
    limiter.admit("patient:p1")


def test_zero_means_no_limit() -> None:
    limiter = LookupLimiter({"patient": 0})
    for _ in range(100):
        limiter.admit("patient:p1")

"""The one value every change detector produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

#: Names of the detectors, as stored with jobs and shown in the API.
SOURCE_SUBSCRIPTION = "subscription"
SOURCE_POLLING = "polling"
SOURCE_EXPORT = "export"
SOURCE_PING = "ping"


@dataclass(frozen=True)
class ChangeEvent:
    """Something in ``patient_id``'s record changed (the pipeline re-gathers the whole record anyway).

    ``resource_type``/``resource_id``/``version`` say what changed when the detector knows it; they let
    ``dedup`` recognise the same change reported by two detectors. ``at`` is when it was detected (UTC).
    """

    patient_id: str
    source: str
    resource_type: str | None = None
    resource_id: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: str | None = None

    def identity(self) -> tuple[str, str, str, str] | None:
        """What makes two reports the same change; None when the detector did not say what changed."""
        if not (self.resource_type and self.resource_id):
            return None
        return (self.patient_id, self.resource_type, self.resource_id, self.version or "")

"""Polling: find what changed since the last look, on servers without Subscriptions.

Two modes, picked from the CapabilityStatement (or forced):

* ``last_updated``: for each watched type that lists the ``_lastUpdated`` search parameter,
  ``GET /{Type}?_lastUpdated=gt<watermark>``. The watermark is the newest ``meta.lastUpdated`` seen, persisted
  per source and type, and the next search starts ``overlap`` earlier: a resource committed with a timestamp
  slightly older than one we already saw (clock skew between server nodes, long transactions) is still found.
  Re-seen versions are dropped. This is what OpenEMR (7.0.3 and 8.1) gets: ``_lastUpdated`` is declared and
  works on every watched type it has (Patient, AllergyIntolerance, CarePlan, CareTeam, Condition, Coverage,
  Device, DiagnosticReport, DocumentReference, Encounter, Goal, Immunization, MedicationRequest, Observation,
  Procedure). Caveat there: CarePlan and Goal report their *creation* date as ``lastUpdated``, so edits of an
  existing care plan or goal are not seen by polling (a ping from the EHR, or any other change of the patient,
  still triggers a send with the current version).
* ``export``: system-level Bulk Data ``$export?_since=<watermark>``, for watched types that cannot be searched
  by ``_lastUpdated``, when the server declares system ``$export``. The manifest's ``transactionTime`` becomes
  the next watermark, as the Bulk Data IG recommends; OpenEMR's ``transactionTime`` (a JSON-encoded PHP
  ``DateTime`` object) is understood too (:func:`parse_transaction_time`).

Only search parameters the CapabilityStatement lists are sent (``FhirClient.search_all``; no ``_count``, which
OpenEMR 7.0.3 answers with an empty Bundle), only types the token may read are polled, and one type failing
does not stop the others: every type is polled, then the first failure is raised for the loop to log.

On the very first run there is no watermark: the poller records the server's current time and reports
nothing, so switching polling on does not re-send every record on the server. Watermarks are saved only after
``on_change`` took the events (at-least-once: a crash re-reports, never loses).
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests

from fhir_bridge.fhir import shapes
from fhir_bridge.fhir.client import FhirClient
from fhir_bridge.fhir.errors import FhirError, FhirInvalidResponse, FhirTimeout, FhirUnsupported
from fhir_bridge.sources.compartment import patient_of
from fhir_bridge.sources.events import SOURCE_EXPORT, SOURCE_POLLING, ChangeEvent
from fhir_bridge.sources.subscription import DEFAULT_RESOURCE_TYPES

log = logging.getLogger(__name__)

EXPORT_KEY = "$export"


class WatermarkStore(Protocol):
    """Where the poller keeps, per source and resource type, the newest change time already handled."""

    def get(self, source: str, resource_type: str) -> datetime | None: ...

    def set(self, source: str, resource_type: str, value: datetime) -> None: ...


class JsonWatermarkStore:
    """A small JSON file of watermarks (the default outside the database); writes are atomic."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ValueError(f"watermark file {self.path} is unreadable") from exc
        return data if isinstance(data, dict) else {}

    def get(self, source: str, resource_type: str) -> datetime | None:
        with self._lock:
            value = self._load().get(source, {}).get(resource_type)
        return parse_instant(value) if isinstance(value, str) else None

    def set(self, source: str, resource_type: str, value: datetime) -> None:
        with self._lock:
            data = self._load()
            data.setdefault(source, {})[resource_type] = format_instant(value)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".watermarks-")
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.path)


class Poller:
    """One polling source. Call ``poll_once()`` on a schedule (the core's scheduler owns the loop)."""

    def __init__(
        self,
        client: FhirClient,
        store: WatermarkStore,
        on_change: Callable[[ChangeEvent], None],
        *,
        source_name: str = "default",
        resource_types: Iterable[str] | None = None,
        overlap: timedelta = timedelta(seconds=5),
        mode: str = "auto",
        page_size: int = 200,
        export_timeout: float = 300.0,
        export_poll_interval: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if mode not in {"auto", "last_updated", "export"}:
            raise ValueError("mode must be auto, last_updated or export")
        self.client = client
        self.store = store
        self.on_change = on_change
        self.source_name = source_name
        self.requested_types = tuple(resource_types) if resource_types else DEFAULT_RESOURCE_TYPES
        self.overlap = overlap
        self.mode = mode
        self.page_size = page_size
        self.export_timeout = export_timeout
        self.export_poll_interval = export_poll_interval
        self.sleep = sleep
        #: Versions already reported inside the overlap window: (type, id, version) -> lastUpdated.
        self._seen: dict[tuple[str, str, str], datetime] = {}
        self._now: datetime | None = None
        #: Types asked for by the running ``$export`` (empty: none asked yet).
        self._export_types: set[str] = set()

    def plan(self) -> tuple[list[str], list[str]]:
        """(types polled by ``_lastUpdated``, types left to ``$export``), from the server's capabilities.

        ``auto`` uses ``_lastUpdated`` where a type declares it (on OpenEMR: every watched type it has) and
        ``$export`` for the other watched types when the server declares system ``$export``. Types the
        token may not read (SMART scopes) are not polled: asking would only be refused on every poll.
        """
        caps = self.client.capabilities()
        readable = getattr(self.client.auth, "readable", None)
        supported = [
            t for t in self.requested_types if caps.supports(t) and (readable is None or readable(t))
        ]
        if self.mode == "export":
            return [], supported
        by_search = [t for t in supported if caps.supports_last_updated(t)]
        rest = [t for t in supported if t not in by_search]
        if self.mode == "last_updated":
            return by_search, []
        by_export = rest if caps.has_system_export else []
        if not by_search and not by_export:
            raise FhirUnsupported("server supports neither _lastUpdated searches nor $export")
        return by_search, by_export

    def effective_mode(self) -> str:
        """``last_updated``, ``export`` or ``mixed`` (both, for different types)."""
        by_search, by_export = self.plan()
        if by_search and by_export:
            return "mixed"
        return "export" if by_export else "last_updated"

    def poll_once(self) -> list[ChangeEvent]:
        """Look for changes since the watermarks; report and return them."""
        by_search, by_export = self.plan()
        self._now = None  # the server's time, fetched at most once per poll (first runs only)
        events: list[ChangeEvent] = []
        failures: list[FhirError] = []
        for rtype in by_search:
            try:
                events.extend(self._poll_type(rtype))
            except FhirError as exc:  # the other types still get their turn
                log.warning("polling %s failed: %s", rtype, exc.code)
                failures.append(exc)
        if by_export:
            try:
                events.extend(self._poll_export(by_export))
            except FhirError as exc:
                log.warning("$export polling failed: %s", exc.code)
                failures.append(exc)
        if failures:
            raise failures[0]
        return events

    # --- _lastUpdated ----------------------------------------------------------------------------------
    def _poll_type(self, rtype: str) -> list[ChangeEvent]:
        watermark = self.store.get(self.source_name, rtype)
        if watermark is None:
            self.store.set(self.source_name, rtype, self._server_now())
            return []
        since = watermark - self.overlap
        newest = watermark
        events: list[ChangeEvent] = []
        found = self.client.search_all(
            rtype, {"_lastUpdated": f"gt{format_instant(since)}"}, optional={"_count": self.page_size}
        )
        for resource in found:
            if resource.get("resourceType") != rtype:
                continue  # OperationOutcome warnings in the search set
            updated = _last_updated(resource)
            if updated is None:
                continue
            newest = max(newest, updated)
            event = self._event(resource, SOURCE_POLLING, updated)
            if event:
                events.append(event)
        for event in events:
            self.on_change(event)
        self.store.set(self.source_name, rtype, newest)
        self._forget_before(newest - self.overlap)
        return events

    def _event(self, resource: dict[str, Any], source: str, updated: datetime) -> ChangeEvent | None:
        meta = resource.get("meta") or {}
        version: str = (
            meta["versionId"] if isinstance(meta.get("versionId"), str) else format_instant(updated)
        )
        key: tuple[str, str, str] = (resource["resourceType"], resource["id"], version)
        if key in self._seen:
            return None
        self._seen[key] = updated
        patient_id = patient_of(resource, self.client.base_url)
        if patient_id is None:
            return None
        return ChangeEvent(
            patient_id=patient_id,
            source=source,
            resource_type=resource["resourceType"],
            resource_id=resource["id"],
            version=version,
        )

    def _forget_before(self, limit: datetime) -> None:
        for key in [k for k, seen in self._seen.items() if seen < limit]:
            del self._seen[key]

    def _server_now(self) -> datetime:
        """The server's clock (the ``Date`` header of ``GET /metadata``, which every FHIR server answers, even
        unauthenticated), so our own clock's skew never enters the watermark."""
        if self._now is not None:
            return self._now
        response = self.client.request("GET", "metadata")
        date = response.headers.get("Date")
        try:
            parsed = email.utils.parsedate_to_datetime(date) if date else None
        except (TypeError, ValueError):
            parsed = None
        self._now = parsed.astimezone(UTC) if parsed else datetime.now(UTC)
        return self._now

    # --- $export ---------------------------------------------------------------------------------------
    def _poll_export(self, types: list[str]) -> list[ChangeEvent]:
        watermark = self.store.get(self.source_name, EXPORT_KEY)
        if watermark is None:
            self.store.set(self.source_name, EXPORT_KEY, self._server_now())
            return []
        since = watermark - self.overlap
        manifest = self._run_export(since, types)
        events: list[ChangeEvent] = []
        for resource in self._export_resources(manifest):
            updated = _last_updated(resource) or since
            event = self._event(resource, SOURCE_EXPORT, updated)
            if event:
                events.append(event)
        for event in events:
            self.on_change(event)
        new_mark = parse_transaction_time(manifest.get("transactionTime"))
        if new_mark is None:
            log.warning("$export manifest has no usable transactionTime; watermark not advanced")
        self.store.set(self.source_name, EXPORT_KEY, max(watermark, new_mark or watermark))
        return events

    def _run_export(self, since: datetime, types: list[str]) -> dict[str, Any]:
        """Kick off a system export and wait for its manifest (Bulk Data IG, async request pattern)."""
        params = {
            "_since": format_instant(since),
            "_type": ",".join(types),
            "_outputFormat": "application/fhir+ndjson",
        }
        if not self.client.capabilities().has_system_export:
            # A server that does not declare system $export the standard way (OpenEMR: not in rest.operation)
            # may not read the standard parameter either: OpenEMR filters on ``type`` and ignores ``_type``.
            params["type"] = params["_type"]
        self._export_types = set(types)
        kickoff = self.client.request("GET", "$export", params=params, headers={"Prefer": "respond-async"})
        status_url = kickoff.headers.get("Content-Location")
        if kickoff.status_code != 202 or not status_url:
            raise FhirInvalidResponse("$export kick-off did not return 202 with Content-Location")
        deadline = time.monotonic() + self.export_timeout
        while time.monotonic() < deadline:
            status = self.client.request("GET", status_url)
            if status.status_code == 200:
                manifest = status.json()
                if not isinstance(manifest, dict) or not isinstance(manifest.get("output", []), list):
                    raise FhirInvalidResponse("$export manifest is not an object with an output list")
                return manifest
            retry_after = status.headers.get("Retry-After", "")
            wait = float(retry_after) if retry_after.isdigit() else self.export_poll_interval
            self.sleep(min(wait, self.export_poll_interval * 5))
        try:
            self.client.request("DELETE", status_url)  # tell the server we gave up
        except FhirError:
            pass
        raise FhirTimeout("$export did not complete in time")

    def _export_resources(self, manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
        needs_token = bool(manifest.get("requiresAccessToken", True))
        ours = urlsplit(self.client.base_url)
        wanted = self._export_types
        for output in manifest.get("output", []):
            url = output.get("url") if isinstance(output, dict) else None
            if not isinstance(url, str):
                raise FhirInvalidResponse("$export output without url")
            if wanted and output.get("type") not in wanted:
                continue  # a server that ignored the type filter: do not download what we did not ask for
            parts = urlsplit(url)
            if (parts.scheme, parts.netloc) == (ours.scheme, ours.netloc):
                response = self.client.request("GET", url, headers={"Accept": "application/fhir+ndjson"})
            elif needs_token:
                raise FhirInvalidResponse("$export file on another origin requires our token: refused")
            else:
                response = requests.get(url, timeout=self.client.timeout)
                response.raise_for_status()
            for line in response.text.splitlines():
                if line.strip():
                    try:
                        yield shapes.check_resource(json.loads(line))
                    except ValueError as exc:
                        raise FhirInvalidResponse("$export file line is not JSON") from exc


def _last_updated(resource: dict[str, Any]) -> datetime | None:
    meta = resource.get("meta")
    value = meta.get("lastUpdated") if isinstance(meta, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None


#: PHP ``DateTime`` ``timezone_type`` 2 abbreviations we can map without guessing.
_PHP_ABBREVIATIONS = {"UTC": 0, "GMT": 0, "Z": 0}


def parse_transaction_time(value: Any) -> datetime | None:
    """The Bulk Data manifest's ``transactionTime`` as an aware UTC datetime, or None when unusable.

    Bulk Data IG: an instant string (``2026-12-07T18:01:00Z``). OpenEMR 7.0.3 and 8.1 send the JSON encoding
    of a PHP ``DateTime`` instead (``FhirOperationExportRestController``, ``ExportJob::getStartTime()``):
    ``{"date": "2026-12-07 18:01:00.000000", "timezone_type": 3, "timezone": "UTC"}``, where
    ``timezone_type`` 1 is an offset (``+02:00``), 2 an abbreviation (``EST``: only UTC/GMT/Z are accepted,
    abbreviations are ambiguous) and 3 a zone name (``Europe/Paris``). Without this, the export watermark
    never advances.
    """
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError:
            return None
    if not isinstance(value, dict) or not isinstance(value.get("date"), str):
        return None
    try:
        local = datetime.fromisoformat(value["date"].strip().replace(" ", "T", 1))
    except ValueError:
        return None
    zone_type, zone = value.get("timezone_type"), value.get("timezone")
    if not isinstance(zone, str):
        return None
    try:
        if zone_type == 1:
            offset = datetime.fromisoformat(f"2000-01-01T00:00:00{zone}").utcoffset()
            tz: Any = timezone(offset) if offset is not None else None
        elif zone_type == 2:
            hours = _PHP_ABBREVIATIONS.get(zone.upper())
            tz = timezone(timedelta(hours=hours)) if hours is not None else None
        elif zone_type == 3:
            tz = ZoneInfo(zone)
        else:
            tz = None
    except (ValueError, KeyError, OSError):
        return None
    if tz is None:
        return None
    return local.replace(tzinfo=tz).astimezone(UTC)


def parse_instant(value: str) -> datetime:
    """A FHIR instant (always with a zone; ``Z`` accepted) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("FHIR instant without a time zone")
    return parsed.astimezone(UTC)


def format_instant(value: datetime) -> str:
    """UTC, millisecond precision, as FHIR search prefixes expect (``2024-01-02T03:04:05.678Z``)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

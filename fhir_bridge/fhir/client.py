"""A small FHIR R4 REST client for the sidecar: reads, searches with paging, writes, retries, capabilities.

Why not a generic FHIR library: the sidecar needs a few interactions done carefully against servers that
differ a lot (HAPI, OpenEMR): feature detection from the CapabilityStatement, bounded retries with
exponential backoff, ``429 Retry-After`` honoured, next-page links that never take our token to another host,
and every failure mapped to one ``FhirError`` type with a stable code. Resource bodies stay plain ``dict``:
the C-CDA mapper works on JSON, and shape checks (``shapes``) are cheap where full models are not.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from fhir_bridge.fhir import shapes
from fhir_bridge.fhir.auth import Auth, NoAuth
from fhir_bridge.fhir.capabilities import Capabilities, ResourceCapabilities
from fhir_bridge.fhir.errors import (
    FhirAuthError,
    FhirError,
    FhirHttpError,
    FhirIncompleteResult,
    FhirInvalidResponse,
    FhirNotFound,
    FhirRateLimited,
    FhirSearchRefused,
    FhirServerError,
    FhirTimeout,
    FhirUnreachable,
    FhirUnsupported,
)

#: ``Capabilities`` is re-exported: its parser lives in ``capabilities`` so ``auth`` can use it without
#: importing this module (which imports ``auth``).
__all__ = [
    "Capabilities",
    "FhirClient",
    "ResourceCapabilities",
    "search_params",
    "search_set_problem",
]

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
#: Statuses after which the server has certainly not applied the request: safe to retry even a POST.
_NOT_APPLIED = {429, 503}
#: Statuses worth retrying for idempotent requests.
_RETRYABLE = {429, 500, 502, 503, 504}
_IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
#: Search *result* parameters (FHIR R4 §3.1.1.5.5 ff.): they shape the answer and are never listed as a
#: ``searchParam`` of a CapabilityStatement, so a server's support for them cannot be read from it.
RESULT_PARAMS = frozenset(
    {"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_contained"}
)


def search_params(
    caps: Capabilities,
    resource_type: str,
    required: Mapping[str, Any],
    optional: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The query for a search the server can answer faithfully (pure).

    Why: OpenEMR answers a search with a parameter it does not support with ``200`` and an *empty* Bundle
    (7.0.3 does so for ``_count``, both 7.0.3 and 8.1 for ``_include`` and unknown names), which reads exactly
    like "this patient has no problems". So a ``required`` parameter must be a ``searchParam`` the
    CapabilityStatement lists for ``resource_type`` (else ``FhirSearchRefused``, before any request), and an
    ``optional`` one is sent only when it is listed (result parameters such as ``_count`` never are, so they
    are left out: paging follows ``next`` links instead).
    """
    declared = caps.resources.get(resource_type, ResourceCapabilities()).search_params
    if not caps.can(resource_type, "search-type"):
        raise FhirSearchRefused(f"the FHIR server does not allow searching {resource_type}")
    query: dict[str, Any] = {}
    for name, value in required.items():
        if name.split(":", 1)[0] not in declared:
            raise FhirSearchRefused(
                f"the FHIR server does not list search parameter {name.split(':', 1)[0]} for {resource_type}"
            )
        query[name] = value
    for name, value in (optional or {}).items():
        if name.split(":", 1)[0] in declared:
            query[name] = value
    return query


def search_set_problem(bundle: Mapping[str, Any]) -> str | None:
    """Why a search-set Bundle must not be trusted as complete (pure), or None.

    An OperationOutcome entry with severity ``error`` or ``fatal`` (FHIR R4 §3.1.1.4: servers report
    unprocessable parameters or partial failures that way, ``search.mode = outcome``) means the matches are
    missing or partial. Warnings and information are fine. Only the issue code is returned (never diagnostics:
    they may quote PHI).
    """
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
            continue
        for issue in resource.get("issue") or []:
            if isinstance(issue, dict) and issue.get("severity") in {"error", "fatal"}:
                code = issue.get("code")
                return code if isinstance(code, str) else "error"
    return None


class FhirClient:
    """FHIR R4 REST client bound to one server.

    ``auth`` adds credentials to each request (see ``fhir_bridge.fhir.auth``); ``timeout`` is per request.
    Transient failures (connection errors, timeouts, 429, 5xx) are retried up to ``max_retries`` times with
    exponential backoff and jitter; a 429's ``Retry-After`` is honoured up to ``max_retry_after`` seconds.
    ``sleep`` is injectable so tests can see the waits without waiting.
    """

    def __init__(
        self,
        base_url: str,
        auth: Auth | None = None,
        timeout: float = 30.0,
        *,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 120.0,
        max_pages: int = 1000,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("FHIR base URL must be an absolute http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.auth: Auth = auth or NoAuth()
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.max_pages = max_pages
        self.session = session or requests.Session()
        self.sleep = sleep
        self._capabilities: Capabilities | None = None

    # --- capabilities ----------------------------------------------------------------------------------
    def capabilities(self, refresh: bool = False) -> Capabilities:
        """The server's features, read once from ``GET /metadata`` (cached)."""
        if self._capabilities is None or refresh:
            statement = self._json("GET", "metadata", expected_type="CapabilityStatement", need_id=False)
            self._capabilities = Capabilities.from_statement(statement)
        return self._capabilities

    # --- reads -----------------------------------------------------------------------------------------
    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        _check_type_and_id(resource_type, resource_id)
        return self._json("GET", f"{resource_type}/{resource_id}", expected_type=resource_type)

    def search(
        self, resource_type: str | None, params: Mapping[str, Any] | list[tuple[str, Any]] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every resource matching the search, following ``next`` links (``resource_type=None``: system)."""
        if resource_type is not None:
            _check_type_and_id(resource_type, None)
        for bundle in self.search_pages(resource_type or "", params):
            yield from shapes.bundle_resources(bundle)

    def search_all(
        self,
        resource_type: str,
        required: Mapping[str, Any],
        optional: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Every match of a search the record depends on, or an error — never a silently partial list.

        Parameters are checked against the CapabilityStatement first (:func:`search_params`); every page is
        checked for error OperationOutcomes (:func:`search_set_problem`); and when the server states
        ``Bundle.total``, fewer matches than announced is ``FhirIncompleteResult``. Returned: the resources of
        ``resource_type`` and anything the server added (``_include``d, warnings are dropped).
        """
        _check_type_and_id(resource_type, None)
        query = search_params(self.capabilities(), resource_type, required, optional)
        found: list[dict[str, Any]] = []
        matches = 0
        total: int | None = None
        for bundle in self.search_pages(resource_type, query):
            problem = search_set_problem(bundle)
            if problem:
                raise FhirSearchRefused(
                    f"the FHIR server answered the {resource_type} search with an error ({problem})",
                    detail=problem,
                )
            if total is None and isinstance(bundle.get("total"), int):
                total = bundle["total"]
            for entry in bundle.get("entry", []):
                resource = entry.get("resource")
                if not isinstance(resource, dict) or resource.get("resourceType") == "OperationOutcome":
                    continue
                search = entry.get("search")
                mode = search.get("mode") if isinstance(search, dict) else None
                if resource.get("resourceType") == resource_type and mode in {None, "match"}:
                    matches += 1
                found.append(shapes.check_resource(resource))
        if total is not None and matches < total:
            raise FhirIncompleteResult(
                f"the FHIR server announced {total} {resource_type} matches but returned {matches}"
            )
        return found

    def search_pages(
        self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Bundles of a search or paged operation (``path`` from the base, e.g. ``Patient/1/$everything``)."""
        url: str | None = self._url(path)
        query = params
        for _ in range(self.max_pages):
            if url is None:
                return
            bundle = shapes.check_bundle(
                self._json("GET", url, params=query, need_id=False, expected_type="Bundle")
            )
            yield bundle
            nxt = shapes.next_link(bundle)
            url = self._same_server(nxt) if nxt else None
            query = None
        raise FhirInvalidResponse(f"more than {self.max_pages} result pages")

    # --- writes ----------------------------------------------------------------------------------------
    def create(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """POST a new resource; returns the stored resource (re-read when the server returns no body)."""
        rtype = str(resource.get("resourceType", ""))
        _check_type_and_id(rtype, None)
        response = self.request(
            "POST", rtype, json_body=resource, headers={"Prefer": "return=representation"}
        )
        return self._written(response, rtype)

    def update(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """PUT a resource at its id (create-or-update)."""
        rtype, rid = str(resource.get("resourceType", "")), str(resource.get("id", ""))
        _check_type_and_id(rtype, rid)
        response = self.request(
            "PUT", f"{rtype}/{rid}", json_body=resource, headers={"Prefer": "return=representation"}
        )
        return self._written(response, rtype)

    def delete(self, resource_type: str, resource_id: str) -> None:
        _check_type_and_id(resource_type, resource_id)
        try:
            self.request("DELETE", f"{resource_type}/{resource_id}")
        except FhirNotFound:
            pass

    def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST a transaction/batch Bundle to the base URL."""
        response = self.request("POST", "", json_body=bundle)
        return shapes.check_bundle(_decode(response))

    # --- the HTTP core ---------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One FHIR interaction with retries; returns a 2xx response or raises a ``FhirError``."""
        url = self._url(path_or_url)
        method = method.upper()
        attempt = 0
        reauthenticated = False
        while True:
            all_headers = {"Accept": FHIR_JSON}
            if json_body is not None:
                all_headers["Content-Type"] = FHIR_JSON
            all_headers.update(headers or {})
            all_headers.update(self.auth.headers())
            try:
                response = self.session.request(
                    method, url, params=params, json=json_body, headers=all_headers, timeout=self.timeout
                )
            except requests.exceptions.ConnectTimeout as exc:
                error: FhirError = FhirUnreachable("connection to the FHIR server timed out")
                retry_safe = True
                cause: Exception = exc
            except requests.exceptions.Timeout as exc:
                error, retry_safe, cause = FhirTimeout(), method in _IDEMPOTENT, exc
            except requests.exceptions.ConnectionError as exc:
                error, retry_safe, cause = FhirUnreachable(), method in _IDEMPOTENT, exc
            except requests.exceptions.RequestException as exc:
                raise FhirError(f"HTTP request failed: {type(exc).__name__}") from exc
            else:
                if response.status_code < 300:
                    return response
                if response.status_code == 401 and not reauthenticated and self.auth.invalidate():
                    reauthenticated = True  # an expired token: fetch a new one once
                    continue
                error = _http_error(response)
                retry_safe = response.status_code in _NOT_APPLIED or (
                    method in _IDEMPOTENT and response.status_code in _RETRYABLE
                )
                cause = error
                if response.status_code == 429:
                    wait = _retry_after(response.headers.get("Retry-After"))
                    if wait is not None and wait > self.max_retry_after:
                        raise error
                    if wait is not None and attempt < self.max_retries:
                        attempt += 1
                        log.info("FHIR server rate-limited us; waiting %.1fs (Retry-After)", wait)
                        self.sleep(wait)
                        continue
            if not retry_safe or attempt >= self.max_retries:
                raise error from (cause if cause is not error else None)
            delay = min(self.max_backoff, self.backoff * (2**attempt)) * (0.5 + random.random() / 2)
            attempt += 1
            log.info("FHIR %s failed (%s); retry %d in %.2fs", method, error.code, attempt, delay)
            self.sleep(delay)

    def _json(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        expected_type: str | None = None,
        need_id: bool = True,
    ) -> dict[str, Any]:
        response = self.request(method, path_or_url, params=params)
        return shapes.check_resource(_decode(response), expected_type=expected_type, need_id=need_id)

    def _written(self, response: requests.Response, rtype: str) -> dict[str, Any]:
        if response.content:
            return shapes.check_resource(_decode(response), expected_type=rtype)
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        ref = shapes.parse_reference(location.split("/_history/")[0], self.base_url) if location else None
        if not ref:
            raise FhirInvalidResponse("write returned neither a body nor a Location")
        return self.read(*ref)

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return self._same_server(path_or_url)
        return f"{self.base_url}/{path_or_url.lstrip('/')}" if path_or_url else self.base_url

    def _same_server(self, url: str) -> str:
        """Refuse to follow a link to another origin: it would receive our Authorization header."""
        absolute = urljoin(self.base_url + "/", url)
        ours, theirs = urlsplit(self.base_url), urlsplit(absolute)
        if (ours.scheme, ours.netloc) != (theirs.scheme, theirs.netloc):
            raise FhirInvalidResponse("server sent a link to another origin")
        return absolute


def _check_type_and_id(resource_type: str, resource_id: str | None) -> None:
    if not shapes.TYPE_RE.match(resource_type or ""):
        raise ValueError("invalid FHIR resource type")
    if resource_id is not None and not shapes.ID_RE.match(resource_id):
        raise ValueError("invalid FHIR resource id")


def _decode(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise FhirInvalidResponse("response is not JSON", status=response.status_code) from exc


def _http_error(response: requests.Response) -> FhirError:
    status = response.status_code
    try:
        detail = shapes.outcome_code(response.json())
    except ValueError:
        detail = None
    if status in {401, 403}:
        return FhirAuthError(f"FHIR server refused access ({status})", status=status, detail=detail)
    if status in {404, 410}:
        return FhirNotFound(status=status, detail=detail)
    if status == 429:
        return FhirRateLimited(status=status, detail=detail)
    if status in {400, 405, 501} and detail in {"not-supported", "not-found"}:
        return FhirUnsupported(f"FHIR server does not support this ({status})", status=status, detail=detail)
    if status >= 500:
        return FhirServerError(f"FHIR server error ({status})", status=status, detail=detail)
    return FhirHttpError(f"FHIR server answered {status}", status=status, detail=detail)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())

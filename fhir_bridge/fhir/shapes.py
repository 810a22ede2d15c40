"""Shape checks for FHIR JSON received from the server (pure functions, no I/O).

Why not a full model validation: servers in the field (OpenEMR, Synthea-loaded HAPI) send resources that a
strict R4 model rejects for harmless reasons, and the C-CDA mapper already tolerates missing elements. What
must hold before anything downstream touches a resource is its *shape*: a JSON object with a known
``resourceType`` and a legal ``id``, references that are strings, Bundles whose entries are objects. Anything
else is refused here with ``FhirInvalidResponse``, so a confused or hostile server cannot push arbitrary
structures into the pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fhir_bridge.fhir.errors import FhirInvalidResponse

#: FHIR R4 id datatype (http://hl7.org/fhir/R4/datatypes.html#id).
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
#: Resource type names are UpperCamelCase ASCII words.
TYPE_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
#: A relative literal reference ``Type/id`` (optionally ``/_history/v``).
RELATIVE_REF_RE = re.compile(
    r"^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$"
)


def check_resource(value: Any, *, expected_type: str | None = None, need_id: bool = True) -> dict[str, Any]:
    """Return ``value`` if it looks like a FHIR resource, else raise ``FhirInvalidResponse``."""
    if not isinstance(value, dict):
        raise FhirInvalidResponse("resource is not a JSON object")
    rtype = value.get("resourceType")
    if not isinstance(rtype, str) or not TYPE_RE.match(rtype):
        raise FhirInvalidResponse("resource has no valid resourceType")
    if expected_type and rtype != expected_type:
        if rtype == "OperationOutcome":
            raise FhirInvalidResponse("server answered with an OperationOutcome", detail=outcome_code(value))
        raise FhirInvalidResponse(f"expected {expected_type}, got {rtype}")
    rid = value.get("id")
    if need_id and (not isinstance(rid, str) or not ID_RE.match(rid)):
        raise FhirInvalidResponse(f"{rtype} has no valid id")
    if rid is not None and not isinstance(rid, str):
        raise FhirInvalidResponse(f"{rtype} id is not a string")
    meta = value.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise FhirInvalidResponse(f"{rtype}.meta is not an object")
    for ref in iter_references(value):
        if not isinstance(ref, str):
            raise FhirInvalidResponse(f"{rtype} has a non-string reference")
    return value


def check_bundle(value: Any) -> dict[str, Any]:
    """A Bundle with well-formed entries (each entry's resource is checked too)."""
    bundle = check_resource(value, expected_type="Bundle", need_id=False)
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FhirInvalidResponse("Bundle.entry is not a list")
    for entry in entries:
        if not isinstance(entry, dict):
            raise FhirInvalidResponse("Bundle entry is not an object")
        if "resource" in entry:
            check_resource(entry["resource"], need_id=False)
    links = bundle.get("link", [])
    if not isinstance(links, list) or not all(isinstance(link, dict) for link in links):
        raise FhirInvalidResponse("Bundle.link is not a list of objects")
    return bundle


def bundle_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources of a (checked) Bundle, skipping entries without one (e.g. deleted in history)."""
    return [entry["resource"] for entry in bundle.get("entry", []) if isinstance(entry.get("resource"), dict)]


def next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link", []):
        if link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def iter_references(value: Any) -> Iterator[Any]:
    """Every ``reference`` value under ``value`` (a Reference is any object with a ``reference`` key)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if key == "reference" and not isinstance(child, dict | list):
                    yield child
                elif key != "contained" and isinstance(child, dict | list):
                    stack.append(child)
        elif isinstance(node, list):
            stack.extend(node)


def parse_reference(ref: str, base_url: str | None = None) -> tuple[str, str] | None:
    """``(type, id)`` of a literal reference on *this* server; None for contained, logical or foreign ones."""
    if base_url and ref.startswith(base_url.rstrip("/") + "/"):
        ref = ref[len(base_url.rstrip("/")) + 1 :]
    match = RELATIVE_REF_RE.match(ref)
    return (match.group(1), match.group(2)) if match else None


def outcome_code(outcome: Any) -> str | None:
    """The first issue code of an OperationOutcome (diagnostics text is not kept: it may quote PHI)."""
    if isinstance(outcome, dict) and outcome.get("resourceType") == "OperationOutcome":
        issues = outcome.get("issue")
        if isinstance(issues, list) and issues and isinstance(issues[0], dict):
            code = issues[0].get("code")
            return code if isinstance(code, str) else None
    return None

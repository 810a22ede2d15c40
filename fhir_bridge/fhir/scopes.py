"""Which SMART scopes the sidecar asks for, and what a granted scope lets it read (pure; no I/O).

Why derived and not ``system/*.read``: servers refuse wildcards they do not list (OpenEMR 7.0.3 and 8.1
answer ``invalid_scope`` for ``system/*.read``; only per-resource ``system/<Type>.read`` are accepted), and
the scopes a backend client registered cap what its token can get. So the sidecar asks for one read scope per
resource type the record gatherer reads (:data:`BACKEND_RESOURCES`), keeping only the types the server has
(CapabilityStatement) and, when its ``.well-known/smart-configuration`` lists system scopes, only those.

:data:`BACKEND_RESOURCES` is also the list the OpenEMR module registers the backend client with
(``SmartClientRegistrar::RESOURCES`` in ``plugin/openemr/oe-module-bluebutton-direct``); a unit test keeps the
two identical, because a type the sidecar asks for but the client was not registered with is a refused read.

Scope syntax: SMART App Launch 2.x §Scopes for requesting clinical data — v1 ``system/Observation.read`` and
v2 ``system/Observation.rs`` both grant reading and searching.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

#: Resource types the sidecar reads with SMART Backend Services, in the OpenEMR module's order (identical to
#: ``SmartClientRegistrar::RESOURCES``; ``tests/unit/test_openemr_profile.py`` asserts it).
BACKEND_RESOURCES: tuple[str, ...] = (
    "Patient",
    "AllergyIntolerance",
    "Condition",
    "MedicationRequest",
    "Medication",
    "Observation",
    "Procedure",
    "Immunization",
    "Encounter",
    "DiagnosticReport",
    "CarePlan",
    "CareTeam",
    "Goal",
    "Device",
    "DocumentReference",
    "Practitioner",
    "Organization",
    "Location",
)

#: Extra scopes for system-level Bulk Data ``$export`` (only when polling must use it; OpenEMR never needs it,
#: every watched type there supports ``_lastUpdated``). ``Binary.read`` fetches OpenEMR's export files.
EXPORT_SCOPES: tuple[str, ...] = ("system/*.$export", "system/*.$bulkdata-status", "system/Binary.read")

_SCOPE_RE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.(read|write|\*|[cruds]+)(\?.*)?$")


def flatten_scopes_supported(value: Any) -> list[str]:
    """``scopes_supported`` from a smart-configuration document as a flat list of strings.

    OpenEMR (7.0.3, 8.1) sends a *nested* array ``[["openid", ...]]`` where SMART App Launch §Metadata says
    array of strings; both shapes are accepted, anything else counts as "not listed" (empty).
    """
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop(0)
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list):
            stack[0:0] = item
    return out


def derive_scopes(
    resource_types: Iterable[str] = BACKEND_RESOURCES,
    *,
    server_types: Iterable[str] | None = None,
    scopes_supported: Iterable[str] | None = None,
    export: bool = False,
) -> str:
    """The space-separated scope string for a ``client_credentials`` request.

    ``server_types``: resource types in the CapabilityStatement (None = unknown, keep all).
    ``scopes_supported``: the flattened smart-configuration list; it filters only when it names at least one
    ``system/`` scope (OpenEMR 8.1 lists none although it grants them; 7.0.3 lists the per-resource ones). A
    type the list does not grant as ``.read`` but as v2 ``.rs`` is asked for in that form. Never a wildcard.
    """
    have = set(server_types) if server_types is not None else None
    listed = {s for s in (scopes_supported or []) if s.startswith("system/")}
    scopes: list[str] = []
    for rtype in dict.fromkeys(resource_types):
        if have is not None and rtype not in have:
            continue
        if not listed:
            scopes.append(f"system/{rtype}.read")
        elif f"system/{rtype}.read" in listed:
            scopes.append(f"system/{rtype}.read")
        elif f"system/{rtype}.rs" in listed:
            scopes.append(f"system/{rtype}.rs")
    if export:
        scopes.extend(s for s in EXPORT_SCOPES if not listed or s in listed)
    return " ".join(scopes)


def allows_read(scopes: Iterable[str], resource_type: str, level: str = "system") -> bool:
    """True when one of ``scopes`` lets a ``level`` client read and search ``resource_type``."""
    for scope in scopes:
        match = _SCOPE_RE.match(scope)
        if not match or match.group(1) != level or match.group(2) not in {resource_type, "*"}:
            continue
        perm = match.group(3)
        if perm in {"read", "*"} or ("r" in perm and "s" in perm and match.group(4) is None):
            return True
    return False


def scope_types(scopes: Iterable[str], level: str = "system") -> set[str]:
    """Resource types named by read scopes of ``level`` (``*`` included as is)."""
    out: set[str] = set()
    for scope in scopes:
        match = _SCOPE_RE.match(scope)
        if match and match.group(1) == level and allows_read([scope], match.group(2), level):
            out.add(match.group(2))
    return out

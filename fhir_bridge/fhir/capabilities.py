"""What a FHIR server says it can do: the parts of its CapabilityStatement the sidecar uses (pure).

Why a module of its own: both the REST client (feature detection) and SMART Backend Services (scope
derivation, the token URL of servers without ``smart-configuration``) read the statement; with the parser
here neither has to import the other (``auth`` is imported by ``client``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceCapabilities:
    """What the server says it can do with one resource type."""

    interactions: frozenset[str] = frozenset()
    search_params: frozenset[str] = frozenset()
    operations: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Capabilities:
    """The features the sidecar picks from the server's CapabilityStatement."""

    fhir_version: str = ""
    software: str = ""
    resources: Mapping[str, ResourceCapabilities] = field(default_factory=dict)
    system_operations: frozenset[str] = frozenset()
    system_interactions: frozenset[str] = frozenset()
    #: SMART token endpoint advertised in rest.security (oauth-uris extension), when present.
    token_url: str | None = None

    @classmethod
    def from_statement(cls, statement: Mapping[str, Any]) -> Capabilities:
        """Parse a CapabilityStatement (pure; tolerant of missing parts, strict on types)."""
        rests = statement.get("rest") or []
        server = next(
            (r for r in rests if isinstance(r, dict) and r.get("mode", "server") == "server"),
            {},
        )
        resources: dict[str, ResourceCapabilities] = {}
        for res in server.get("resource") or []:
            if not isinstance(res, dict) or not isinstance(res.get("type"), str):
                continue
            resources[res["type"]] = ResourceCapabilities(
                interactions=_names(res.get("interaction"), "code"),
                search_params=_names(res.get("searchParam"), "name"),
                operations=_names(res.get("operation"), "name"),
            )
        token_url = None
        declared = server.get("security")
        security: Mapping[str, Any] = declared if isinstance(declared, dict) else {}
        for ext in security.get("extension") or []:
            if isinstance(ext, dict) and str(ext.get("url", "")).endswith("oauth-uris"):
                for sub in ext.get("extension") or []:
                    if isinstance(sub, dict) and sub.get("url") == "token":
                        token_url = sub.get("valueUri") if isinstance(sub.get("valueUri"), str) else None
        named = statement.get("software")
        software: Mapping[str, Any] = named if isinstance(named, dict) else {}
        return cls(
            fhir_version=str(statement.get("fhirVersion") or ""),
            software=str(software.get("name") or ""),
            resources=resources,
            system_operations=_names(server.get("operation"), "name"),
            system_interactions=_names(server.get("interaction"), "code"),
            token_url=token_url,
        )

    def supports(self, resource_type: str) -> bool:
        return resource_type in self.resources

    def can(self, resource_type: str, interaction: str) -> bool:
        """``interaction`` is a CapabilityStatement code: read, search-type, create, update, delete..."""
        return interaction in self.resources.get(resource_type, ResourceCapabilities()).interactions

    def can_search(self, resource_type: str, param: str) -> bool:
        caps = self.resources.get(resource_type)
        return caps is not None and "search-type" in caps.interactions and param in caps.search_params

    @property
    def has_subscriptions(self) -> bool:
        """The server stores Subscription resources (R4 rest-hook delivery is then HAPI's job)."""
        return self.can("Subscription", "create")

    @property
    def has_patient_everything(self) -> bool:
        ops = self.resources.get("Patient", ResourceCapabilities()).operations
        return "everything" in ops or "patient-everything" in ops

    @property
    def has_system_export(self) -> bool:
        return "export" in self.system_operations

    def supports_last_updated(self, resource_type: str) -> bool:
        return self.can_search(resource_type, "_lastUpdated")


def _names(items: Any, key: str) -> frozenset[str]:
    if not isinstance(items, list):
        return frozenset()
    return frozenset(i[key] for i in items if isinstance(i, dict) and isinstance(i.get(key), str))

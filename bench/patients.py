"""Synthetic patients for the benches that need many of them in a real FHIR server (HAPI)."""

from __future__ import annotations

from typing import Any


def load_patients(server: Any, count: int, family: str, batch: int = 200) -> list[str]:
    """Create ``count`` minimal patients (``<family><n>``) in ``server`` with transaction bundles of
    ``batch`` entries; returns their ids in order. ``server`` is the HAPI fixture (``.transaction(bundle)``)."""
    ids: list[str] = []
    for start in range(0, count, batch):
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Patient",
                        "name": [{"family": f"{family}{n}", "given": ["Pat"]}],
                        "gender": "female",
                        "birthDate": "1980-01-01",
                    },
                    "request": {"method": "POST", "url": "Patient"},
                }
                for n in range(start, min(count, start + batch))
            ],
        }
        reply = server.transaction(bundle)
        ids += [entry["response"]["location"].split("/")[1] for entry in reply["entry"]]
    return ids

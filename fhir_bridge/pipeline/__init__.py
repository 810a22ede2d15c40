"""Durable delivery pipeline: ``states`` (the job state machine), ``jobs`` (compare-and-set moves),
``debounce`` (per-patient change windows), ``service.Pipeline`` (the façade), ``runner`` (local threads),
``pgqueue`` (procrastinate tasks for scale-out on PostgreSQL), ``ports`` (what it needs from FHIR and Direct).
"""

from fhir_bridge.pipeline.states import State

__all__ = ["State"]

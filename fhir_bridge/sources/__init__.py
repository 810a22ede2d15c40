"""Change detection: how the sidecar learns that a patient's record changed.

Every detector turns what it saw into a ``events.ChangeEvent(patient_id, source, ...)`` and hands it to one
``on_change`` callable (the pipeline's debouncer). Detectors, each optional per FHIR source:

* ``subscription``: R4 rest-hook Subscriptions we create and own on the server, and the Flask blueprint that
  receives HAPI's notifications (the only module here that imports Flask);
* ``polling``: ``_lastUpdated=gt<watermark>`` searches, or system ``$export?_since=`` where that is all the
  server offers (OpenEMR);
* ``pings``: validation of "look at this patient now" calls from an EMR plugin.

``dedup.ChangeFanIn`` sits in front of ``on_change`` so a change seen by two detectors is passed on once.
"""

from __future__ import annotations

from fhir_bridge.sources.events import ChangeEvent

__all__ = ["ChangeEvent"]

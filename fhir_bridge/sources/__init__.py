"""Change detection: how the sidecar learns that a patient's record changed.

Every detector turns what it saw into a ``events.ChangeEvent(patient_id, source, ...)`` and hands it to one
``on_change`` callable (the pipeline's debouncer). Detectors, each optional per FHIR source:

* ``subscription``: R4 rest-hook Subscriptions we create and own on the server, and the Flask blueprint that
  receives HAPI's notifications (the only module here that imports Flask);
* ``polling``: ``_lastUpdated=gt<watermark>`` searches (on OpenEMR 7.0.3/8.1 every watched type supports
  them), or system ``$export?_since=`` for types that cannot be searched that way;
* ``pings``: validation of "look at this patient now" calls from an EMR plugin.

``dedup.ChangeFanIn`` sits in front of ``on_change`` so a change seen by two detectors is passed on once.
"""

from __future__ import annotations

from fhir_bridge.sources.events import ChangeEvent

__all__ = ["ChangeEvent"]

"""The ``bbdirect`` command: a thin front over :mod:`direct`, :mod:`ccda_mapper` and :mod:`fhir_bridge`."""

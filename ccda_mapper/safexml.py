"""The one XML parser configuration for every document this package reads: generated CCDs read back
(``clinical_hash``), documents from outside (``render_html``, the validator) and the shipped schema files.

Why one place: the XXE defences (no network, no DTD loading, no entity expansion) must not drift apart
between copies.  ``huge_tree`` because the CCD of a long record exceeds libxml2's default depth and text-node
limits, which would otherwise fail a valid document.  A document that still carries a DOCTYPE is refused
by each caller (the entities were not expanded, but a CDA document never needs one).
"""

from __future__ import annotations

from lxml import etree


def safe_parser() -> etree.XMLParser:
    """A new XXE-safe parser (a new one per call: an lxml parser must not be used by two threads at once,
    and making one costs microseconds next to the parse)."""
    return etree.XMLParser(
        no_network=True, resolve_entities=False, load_dtd=False, dtd_validation=False, huge_tree=True
    )


def has_doctype(root: etree._Element) -> bool:
    """Whether the parsed document declared a document type (refused by every reader here)."""
    return bool(root.getroottree().docinfo.doctype)  # type: ignore[attr-defined]  # absent from lxml-stubs 0.5

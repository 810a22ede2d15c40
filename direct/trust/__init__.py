"""Trust: RFC 5280 path validation, trust anchors and bundles, and the per-send trust policy."""

from __future__ import annotations

from direct.trust.path import ChainResult, check_leaf, validate_chain

__all__ = ["ChainResult", "check_leaf", "validate_chain"]

"""Trust: RFC 5280 path validation, trust anchors and bundles, and the per-send trust policy."""

from __future__ import annotations

from direct.trust.anchors import load_anchor_file, load_anchor_files
from direct.trust.bundles import BundleStatus, TrustBundle, TrustStore, parse_bundle
from direct.trust.path import ChainResult, check_leaf, validate_chain
from direct.trust.policy import TrustPolicy, Verdict, evaluate

__all__ = [
    "BundleStatus",
    "ChainResult",
    "TrustBundle",
    "TrustPolicy",
    "TrustStore",
    "Verdict",
    "check_leaf",
    "evaluate",
    "load_anchor_file",
    "load_anchor_files",
    "parse_bundle",
    "validate_chain",
]

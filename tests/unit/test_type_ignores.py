"""Issue 13: every ``# type: ignore`` left in the product (``direct``, ``ccda_mapper``, ``fhir_bridge``,
``bbdirect``) names its error code and says why on the same line.

(mypy itself enforces the code, ``enable_error_code = ["ignore-without-code"]``, and flags ignores no
longer needed, ``warn_unused_ignores``; the reason is for the next reader, so it is checked here.)
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)$")
PACKAGES = ("direct", "ccda_mapper", "fhir_bridge", "bbdirect")
WITH_REASON = re.compile(r"^\[[a-z-]+(?:, *[a-z-]+)*\]\s+#\s*\S")


def test_every_type_ignore_in_the_product_has_a_code_and_a_reason():
    bare = []
    paths = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    assert len(paths) > 100  # the packages are where this test expects them
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found = IGNORE.search(line)
            if found and not WITH_REASON.match(found.group("rest")):
                bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert bare == []

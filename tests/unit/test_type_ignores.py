"""Issue 13: every ``# type: ignore`` left in ``direct/`` names its error code and says why on the same line.

(mypy itself enforces the code, ``enable_error_code = ["ignore-without-code"]``, and flags ignores no
longer needed, ``warn_unused_ignores``; the reason is for the next reader, so it is checked here.)
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)$")
WITH_REASON = re.compile(r"^\[[a-z-]+(?:, *[a-z-]+)*\]\s+#\s*\S")


def test_every_type_ignore_in_direct_has_a_code_and_a_reason():
    bare = []
    for path in sorted((ROOT / "direct").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found = IGNORE.search(line)
            if found and not WITH_REASON.match(found.group("rest")):
                bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert bare == []

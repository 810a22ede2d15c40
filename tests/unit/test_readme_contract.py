"""The README's two commands are the ones the Makefile provides, and CI runs exactly the test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [m.group(1) for m in re.finditer(r"^    (make [a-z-]+)\s*$", text, re.M)]


def test_readme_has_exactly_two_commands():
    assert _readme_commands() == ["make demo", "make test"]


def test_makefile_defines_both_targets():
    makefile = (ROOT / "Makefile").read_text()
    for command in _readme_commands():
        target = command.split()[1]
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no target {target}"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    calls = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "make test" in calls
    assert not [c for c in calls if c.startswith(("pytest", "python", ".venv"))], (
        "CI must not run hidden steps"
    )

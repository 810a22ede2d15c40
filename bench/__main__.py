"""``make bench`` / ``python -m bench``: run every benchmark in turn with its documented defaults.

Each script stays runnable on its own (see bench/README.md for the commands and the tables); this only
saves typing them one by one. Benchmarks are never part of the test suite: speed is measured here.
``python -m bench fault [--minutes N ...]`` runs the fault-injection run (bench/fault_run.py) instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    if argv[:1] == ["fault"]:
        # The fault run is a pass/fail run of minutes, not a speed measurement: only on request
        # (``python -m bench fault --minutes 10``, the same as ``python -m bench.fault_run``).
        from bench import fault_run

        return fault_run.main(argv[1:])
    scripts = sorted(HERE.glob("*_bench.py"))
    wanted = set(argv)
    failures = 0
    for script in scripts:
        name = script.stem.removesuffix("_bench")
        if wanted and name not in wanted:
            continue
        print(f"== {name} ({script.name})", flush=True)
        failures += subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

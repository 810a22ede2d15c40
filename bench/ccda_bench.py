"""C-CDA build benchmark: ms per patient for every FHIR bundle, ours vs. Medplum's ``convertFhirToCcda``.

Method (the same on both sides): the bundle JSON is parsed once, outside the timing; the converter runs
``--warmup`` times untimed, then ``--runs`` times timed; the table shows the median. Ours is
``ccda_mapper.build_ccd(bundle)`` in this process (bytes out); Medplum's runs in one node process
(``bench/node/medplum_bench.js``: ``convertFhirToCcda`` + ``convertCcdaToXml``, XML text out), bundle by
bundle and just before ours, so both sides see the same machine load. Both outputs
are then checked with the built-in validator (CDA XSD + HL7 C-CDA R2.1 Schematron) and the error / warning
counts are shown next to the times. Nothing here is a test: numbers depend on the machine and its load.

Usage:  .venv/bin/python bench/ccda_bench.py [--runs 20] [--warmup 3] [--bundles DIR] [--json OUT.json]
                                             [--no-medplum] [--no-validate] [--cpu]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NODE_DIR = ROOT / "bench" / "node"
DEFAULT_BUNDLES = ROOT / "tests" / "data" / "fhir"


def bundle_files(directory: Path | None) -> list[Path]:
    """The bundles to time: those the repository ships (tests/data/fhir, sources in its SOURCES.md) unless
    ``--bundles`` names another directory."""
    directory = directory or DEFAULT_BUNDLES
    return sorted(directory.glob("*.json"))


def resource_count(bundle: dict[str, Any]) -> int:
    return sum(
        1 for e in bundle.get("entry", []) if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    )


def time_ours(
    bundle: dict[str, Any], runs: int, warmup: int, clock: Any = time.perf_counter
) -> tuple[list[float], bytes]:
    """Timed runs of build_ccd on an already-parsed bundle (a fresh deep copy each run, made untimed, so a
    converter that mutated its input could not profit from a previous run).  ``clock`` is wall time, or the
    thread's CPU time with ``--cpu`` (steadier on a loaded machine: waiting for a core is not counted)."""
    from ccda_mapper import build_ccd

    xml = b""
    for _ in range(warmup):
        xml = build_ccd(copy.deepcopy(bundle))
    times = []
    for _ in range(runs):
        data = copy.deepcopy(bundle)
        gc.collect()
        t0 = clock()
        xml = build_ccd(data)
        times.append((clock() - t0) * 1000)
    return times, xml


def time_medplum(files: list[Path], runs: int, warmup: int, out_dir: Path) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        return {"__error__": "node is not installed"}
    if not (NODE_DIR / "node_modules" / "@medplum" / "ccda").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            return {"__error__": "npm is not installed"}
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True)
    timing = ["--runs", str(runs), "--warmup", str(warmup), "--out-dir", str(out_dir)]
    proc = subprocess.run(
        [node, str(NODE_DIR / "medplum_bench.js"), *timing, *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    return json.loads(proc.stdout)


def counts(xml: bytes | None, enabled: bool) -> tuple[int, int] | None:
    if xml is None or not enabled:
        return None
    from ccda_mapper import validate

    report = validate(xml)
    return len(report.xsd_errors) + len(report.schematron_errors), len(report.schematron_warnings)


def fmt_counts(c: tuple[int, int] | None) -> tuple[str, str]:
    return ("n/a", "n/a") if c is None else (str(c[0]), str(c[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="timed runs per bundle (median reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    ap.add_argument("--bundles", type=Path, default=None, help="folder of FHIR bundle .json files")
    ap.add_argument("--json", type=Path, default=None, help="also write raw results here")
    ap.add_argument("--no-medplum", action="store_true", help="time ours only")
    ap.add_argument("--no-validate", action="store_true", help="skip the XSD/Schematron counts")
    ap.add_argument(
        "--cpu",
        action="store_true",
        help="time ours in thread CPU time (Medplum stays wall time: use with --no-medplum)",
    )
    args = ap.parse_args(argv)

    files = bundle_files(args.bundles)
    if not files:
        print("no bundles found", file=sys.stderr)
        return 2
    validate_on = not args.no_validate
    with tempfile.TemporaryDirectory(prefix="ccda-bench-") as tmp:
        rows = []
        for f in files:
            # One bundle at a time, Medplum then ours, so both see the same machine load.
            medplum = {} if args.no_medplum else time_medplum([f], args.runs, args.warmup, Path(tmp))
            bundle = json.loads(f.read_text(encoding="utf-8"))
            clock = time.thread_time if args.cpu else time.perf_counter
            ours_ms, ours_xml = time_ours(bundle, args.runs, args.warmup, clock)
            m = medplum.get(str(f), {})
            m_xml = Path(m["xml"]).read_bytes() if m.get("xml") else None
            rows.append(
                {
                    "bundle": f.stem,
                    "resources": resource_count(bundle),
                    "ours_ms": statistics.median(ours_ms),
                    "ours_counts": counts(ours_xml, validate_on),
                    "medplum_ms": statistics.median(m["ms"]) if m.get("ms") else None,
                    "medplum_error": m.get("error") or medplum.get("__error__"),
                    "medplum_counts": counts(m_xml, validate_on),
                }
            )

    clock_name = "thread CPU time" if args.cpu else "wall time"
    print(f"runs={args.runs} warmup={args.warmup} median ({clock_name}); python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs")  # fmt: skip
    print()
    print(
        "| bundle | resources | ours ms | Medplum ms | ours errors / warnings | Medplum errors / warnings |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        oe, ow = fmt_counts(r["ours_counts"])
        me, mw = fmt_counts(r["medplum_counts"])
        if r["medplum_ms"] is not None:
            mp = f"{r['medplum_ms']:.1f}"
        else:
            mp = "not run" if args.no_medplum else f"failed: {r['medplum_error']}"
        print(f"| {r['bundle']} | {r['resources']} | {r['ours_ms']:.1f} | {mp} | {oe} / {ow} | {me} / {mw} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

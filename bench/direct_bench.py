"""Benchmark: seal and unseal of Direct messages in-process vs ``openssl cms`` on the same payloads.

    .venv/bin/python bench/direct_bench.py [--sizes 100000,5000000] [--seconds 3]

For each payload size it builds one wrapped message with a C-CDA-like attachment of that size and measures
(a) our in-process ``direct.smime.seal`` / ``unseal`` (sign SHA-256 + AES-256-CBC + RSA-2048 PKCS#1 v1.5,
encrypted to recipient and sender; unseal includes decrypt, verify, chain validation and attachment
extraction) and (b) OpenSSL doing the same work on the same bytes: ``openssl cms -sign | openssl cms
-encrypt`` and ``openssl cms -decrypt | openssl cms -verify`` (two processes each, as a shell pipeline
would; process start-up is part of OpenSSL's cost). The contenders run interleaved, one call each per round,
so load changes on the shared machine hit all alike. Prints a Markdown table: messages/s from the *median*
call time of each contender, the ratio of the medians, and the peak memory (tracemalloc, one extra call
outside the timing) our seal allocates on top of its input, also as a multiple of the payload size. The load
average before and after the run is printed with the table (the machine is shared).
"""

from __future__ import annotations

import argparse
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
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from direct import certgen
from direct.message import Attachment, build_message, to_bytes
from direct.smime import Identity, seal, unseal


def payload(size: int) -> bytes:
    """XML-looking bytes of ``size`` (random text, so compression-free like real base64 attachments)."""
    chunk = os.urandom(size * 3 // 4 + 3).hex()[:size]
    return (b"<ClinicalDocument>" + chunk.encode() + b"</ClinicalDocument>")[:size]


def rates(fns: dict, seconds: float, min_rounds: int = 3) -> dict:
    """Messages/s of each function from its median call time, run interleaved (one call of each per round)
    so that load changes on a shared machine hit all contenders alike and the ratios stay meaningful. Also
    ``<name>_mean`` (rounds / total time, the figure earlier tables reported) and ``rounds``."""
    spent: dict[str, list[float]] = {name: [] for name in fns}
    rounds, start = 0, time.perf_counter()
    while rounds < min_rounds or time.perf_counter() - start < seconds:
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            spent[name].append(time.perf_counter() - t0)
        rounds += 1
    out: dict = {name: 1 / statistics.median(times) for name, times in spent.items()}
    out.update({f"{name}_mean": len(times) / sum(times) for name, times in spent.items()})
    out["rounds"] = rounds
    return out


def seal_peak(inner, alice, bob) -> int:
    """Bytes seal() allocates at its peak beyond what was allocated when it was called (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        sealed = seal(inner, alice, [bob.cert])
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    del sealed
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,5000000")
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum measuring time per cell")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args()
    load_before = os.getloadavg()
    ossl = shutil.which("openssl")
    root = certgen.make_ca("Bench Root")
    inter = certgen.make_ca("Bench Intermediate", issuer=root)
    alice_i = certgen.make_leaf(inter, address="alice@a.example")
    bob_i = certgen.make_leaf(inter, address="bob@b.example")
    alice, bob = Identity.from_issued(alice_i), Identity.from_issued(bob_i)
    work = Path(tempfile.mkdtemp(prefix="bbd-bench-"))
    a_pem, a_key = alice_i.write(work, "alice")
    b_pem, b_key = bob_i.write(work, "bob")
    (work / "chain.pem").write_bytes(inter.cert_pem)
    (work / "root.pem").write_bytes(root.cert_pem)
    (work / "alice-leaf.pem").write_bytes(alice_i.cert_pem)
    (work / "bob-leaf.pem").write_bytes(bob_i.cert_pem)

    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        inner = build_message(
            "alice@a.example",
            ["bob@b.example"],
            "Bench",
            "text",
            [Attachment("ccd.xml", "application/xml", payload(size))],
        )
        raw = seal(inner, alice, [bob.cert])
        check = unseal(raw, [bob], [root.cert])
        assert check.ok, check.error
        fns = {
            "ours_seal": lambda inner=inner: seal(inner, alice, [bob.cert]),
            "ours_unseal": lambda raw=raw: unseal(raw, [bob], [root.cert]),
        }
        row = {"size": size, "msg": len(raw), "seal_peak": seal_peak(inner, alice, bob)}
        if ossl:
            content = work / f"content-{size}.eml"
            content.write_bytes(b"Content-Type: message/rfc822\r\n\r\n" + to_bytes(inner))
            sealed = work / f"sealed-{size}.eml"

            def ossl_seal(content=content, sealed=sealed) -> None:
                sign = subprocess.run(
                    [
                        ossl,
                        "cms",
                        "-sign",
                        "-signer",
                        str(a_pem),
                        "-inkey",
                        str(a_key),
                        "-certfile",
                        str(work / "chain.pem"),
                        "-md",
                        "sha256",
                        "-in",
                        str(content),
                    ],
                    capture_output=True,
                    check=True,
                )
                enc = subprocess.run(
                    [
                        ossl,
                        "cms",
                        "-encrypt",
                        "-aes256",
                        str(work / "bob-leaf.pem"),
                        str(work / "alice-leaf.pem"),
                    ],
                    input=sign.stdout,
                    capture_output=True,
                    check=True,
                )
                sealed.write_bytes(enc.stdout)

            def ossl_unseal(sealed=sealed) -> None:
                dec = subprocess.run(
                    [ossl, "cms", "-decrypt", "-recip", str(b_pem), "-inkey", str(b_key), "-in", str(sealed)],
                    capture_output=True,
                    check=True,
                )
                subprocess.run(
                    [ossl, "cms", "-verify", "-CAfile", str(work / "root.pem"), "-purpose", "any"],
                    input=dec.stdout,
                    capture_output=True,
                    check=True,
                )

            ossl_seal()  # makes the sealed file ossl_unseal reads
            fns.update(ossl_seal=ossl_seal, ossl_unseal=ossl_unseal)
        row.update(rates(fns, args.seconds))
        rows.append(row)

    load_after = os.getloadavg()
    version = (
        subprocess.run([ossl, "version"], capture_output=True, text=True).stdout.strip() if ossl else "-"
    )
    print(f"Python {platform.python_version()}, {version}, {os.cpu_count()} CPU(s), {platform.machine()}")
    print(
        f"load average (1/5/15 min) before {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {' '.join(f'{x:.2f}' for x in load_after)}; --seconds {args.seconds:g}\n"
    )
    print(
        "| payload | sealed message | ours seal msg/s | openssl seal msg/s | ratio | ours unseal msg/s "
        "| openssl unseal msg/s | ratio | ours seal peak memory | rounds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:

        def cell(key, r=r):
            return f"{r[key]:.1f}" if key in r else "-"

        def ratio(a, b, r=r):
            return f"{r[a] / r[b]:.2f}x" if b in r else "-"

        print(
            f"| {r['size'] / 1000:,.0f} KB | {r['msg'] / 1000:,.0f} KB | {cell('ours_seal')} | {cell('ossl_seal')} "
            f"| {ratio('ours_seal', 'ossl_seal')} | {cell('ours_unseal')} | {cell('ossl_unseal')} "
            f"| {ratio('ours_unseal', 'ossl_unseal')} | {r['seal_peak'] / 1e6:.1f} MB "
            f"({r['seal_peak'] / r['size']:.2f}x payload) | {r['rounds']} |"
        )
    print("\nmsg/s = 1 / median call time; ratio = ours / openssl (> 1: ours faster).")
    if args.json:
        meta = {"python": platform.python_version(), "openssl": version, "load": [load_before, load_after]}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

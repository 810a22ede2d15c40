"""Certificate discovery latency against a local BIND9 and slapd: cold and warm, p50/p95.

Method: one ``named`` and one ``slapd`` are started on loopback (the test fixtures' classes), a test PKI
is generated, and three recipients are published: an address-bound certificate in DNS (CERT PKIX), a
large (4096-bit) one that needs the TCP retry, and an address-bound certificate in LDAP reached through an
``_ldap._tcp`` SRV record. *Cold* = a new ``CertificateResolver`` per lookup (empty DNS/LDAP/CRL caches:
every query, the LDAP connection, the rootDSE read and the path validation happen); *warm* = the same
resolver again (TTL caches hit; certificates are still validated every time). Each case runs ``--runs``
times after ``--warmup`` untimed runs. Nothing here is a test: numbers depend on the machine and its load.

Usage:  .venv/bin/python bench/discovery_bench.py [--runs 50] [--warmup 3] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from direct import certgen  # noqa: E402
from direct.discovery import CertificateResolver, DiscoveryConfig  # noqa: E402
from tests.fixtures.bind import BindServer  # noqa: E402
from tests.fixtures.ldap import SlapdServer, person  # noqa: E402
from tests.support.services import which  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    named, rndc, slapd = which("named"), which("rndc"), which("slapd")
    if not (named and rndc and slapd):
        print("named, rndc and slapd are needed (apt-get install bind9 bind9-utils slapd)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "bind").mkdir()
        (tmpdir / "ldap").mkdir()
        bind = BindServer(tmpdir / "bind", named, rndc)
        ldap = SlapdServer(tmpdir / "ldap", slapd, "ou=bench")
        bind.start()
        ldap.start()
        try:
            root = certgen.make_ca("Bench Root")
            dns_leaf = certgen.make_leaf(root, address="dns@bench.test")
            big_leaf = certgen.make_leaf(root, address="big@bench.test", bits=4096)
            ldap_leaf = certgen.make_leaf(root, address="ldap@bench-ldap.test")

            def rr(owner: str, leaf: certgen.Issued) -> str:
                return f"{owner} 300 IN CERT PKIX 0 0 ( {base64.b64encode(leaf.cert_der).decode()} )"

            bind.zone("bench.test", [rr("dns", dns_leaf), rr("big", big_leaf)])
            bind.zone(
                "bench-ldap.test",
                [f"_ldap._tcp IN SRV 0 0 {ldap.port} ldap.bench-ldap.test.", "ldap IN A 127.0.0.1"],
            )
            ldap.load([person(ldap.suffix, "ldap", "ldap@bench-ldap.test", [ldap_leaf.cert_der])])
            config = DiscoveryConfig(nameservers=[(bind.host, bind.port)], anchors=[root.cert])
            cases = {
                "dns (address-bound)": "dns@bench.test",
                "dns 4096-bit (TCP retry)": "big@bench.test",
                "ldap via SRV": "ldap@bench-ldap.test",
            }
            rows = []
            for label, address in cases.items():
                for mode in ("cold", "warm"):
                    warm = CertificateResolver(config)
                    timings = []
                    for i in range(args.warmup + args.runs):
                        resolver = CertificateResolver(config) if mode == "cold" else warm
                        start = time.perf_counter()
                        result = resolver.lookup(address)
                        elapsed = (time.perf_counter() - start) * 1000
                        if not result.selected:
                            raise SystemExit(f"{address}: no certificate selected ({result.error})")
                        if i >= args.warmup:
                            timings.append(elapsed)
                    rows.append(
                        {
                            "case": label,
                            "mode": mode,
                            "runs": args.runs,
                            "p50_ms": round(statistics.median(timings), 2),
                            "p95_ms": round(percentile(timings, 0.95), 2),
                        }
                    )
        finally:
            ldap.stop()
            bind.stop()
    print(f"Discovery latency ({platform.machine()}, Python {platform.python_version()}, {args.runs} runs)")
    print(f"{'case':28} {'mode':5} {'p50 ms':>8} {'p95 ms':>8}")
    for row in rows:
        print(f"{row['case']:28} {row['mode']:5} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

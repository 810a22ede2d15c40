"""The fixed ``bbdirect lookup --json`` contract and ``bbdirect publish`` hosting, end to end against the
real BIND9 and slapd: what ``publish`` emits is loaded with rndc/ldapadd and found again by ``lookup``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from direct import certgen
from direct.netpolicy import ALLOW_ENV
from tests.support.services import need

pytestmark = [pytest.mark.service("bind9"), pytest.mark.service("slapd")]

BBDIRECT = [sys.executable, "-m", "bbdirect.cli"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != ALLOW_ENV}  # the default policy unless given
    return subprocess.run(
        [*BBDIRECT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        env={**environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def published(bind, pki):
    ok = pki.address("kim@cli.test")
    expired = pki.expired("kim@cli.test")
    bind.zone(
        "cli.test",
        [
            f"kim 300 IN CERT PKIX 0 0 ( {base64.b64encode(ok.cert_der).decode()} )",
            f"kim 300 IN CERT PKIX 0 0 ( {base64.b64encode(expired.cert_der).decode()} )",
            f"lee 300 IN CERT PKIX 0 0 ( {base64.b64encode(expired.cert_der).decode()} )",
        ],
    )
    anchor = pki.write_cert(pki.intermediate.cert, "cli-anchor")
    return ok, expired, anchor


def test_lookup_json_contract_success(bind, published) -> None:
    ok, expired, anchor = published
    proc = _run("lookup", "kim@cli.test", "--json", "--nameserver", bind.nameserver, "--anchor", str(anchor))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # stdout is only JSON
    assert set(doc) == {"address", "selected", "candidates", "error"}
    assert doc["address"] == "kim@cli.test" and doc["error"] is None
    assert doc["selected"] == [
        {
            "sha256": hashlib.sha256(ok.cert_der).hexdigest(),
            "source": "dns",
            "binding": "address",
            "subject": ok.cert.subject.rfc4514_string(),
            "not_after": ok.cert.not_valid_after_utc.isoformat(),
        }
    ]
    by_hash = {c["sha256"]: c for c in doc["candidates"]}
    assert set(by_hash[hashlib.sha256(ok.cert_der).hexdigest()]) == {
        "sha256",
        "source",
        "binding",
        "subject",
        "not_after",
        "usable",
        "reason",
    }
    assert by_hash[hashlib.sha256(ok.cert_der).hexdigest()]["usable"] is True
    stale = by_hash[hashlib.sha256(expired.cert_der).hexdigest()]
    assert (stale["usable"], stale["reason"], stale["source"]) == (False, "expired", "dns")


def test_lookup_exit_2_when_nothing_usable(bind, published) -> None:
    _, _, anchor = published
    proc = _run("lookup", "lee@cli.test", "--json", "--nameserver", bind.nameserver, "--anchor", str(anchor))
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["selected"] == [] and doc["error"]["code"] == "no_usable_certificate"
    proc = _run("lookup", "nobody@cli.test", "--json", "--nameserver", bind.nameserver)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"]["code"] == "no_certificate"


def test_lookup_exit_1_on_usage_errors(bind) -> None:
    bad = _run("lookup", "not an address", "--json", "--nameserver", bind.nameserver)
    assert bad.returncode == 1 and json.loads(bad.stdout)["error"]["code"] == "bad_address"
    assert _run("lookup", "--json").returncode == 1  # missing ADDRESS
    assert _run("lookup", "a@b.test", "--nameserver", "host:notaport", "--json").returncode == 1
    assert _run("lookup", "a@b.test", "--anchor", "/nonexistent.pem", "--json").returncode == 1


def test_lookup_table_output(bind, published) -> None:
    _, _, anchor = published
    proc = _run("lookup", "kim@cli.test", "--nameserver", bind.nameserver, "--anchor", str(anchor))
    assert proc.returncode == 0
    assert "SELECTED" in proc.stdout and "expired" in proc.stdout


def test_nameserver_from_environment(bind, published) -> None:
    _, _, anchor = published
    proc = subprocess.run(
        [*BBDIRECT, "lookup", "kim@cli.test", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "BBDIRECT_NAMESERVER": bind.nameserver,
            "BBDIRECT_ANCHORS": str(anchor),
            "PATH": "/usr/bin:/bin",
        },
    )
    assert proc.returncode == 0, proc.stderr


def test_publish_output_is_discoverable(bind, ldap_servers, pki, tmp_path) -> None:
    """Our own certificates, published with the generated BIND records and LDIF, are found by lookup."""
    ldapadd = need("ldapadd", "apt-get install ldap-utils")
    ours_dns = pki.address("mdn@ours.test")
    ours_ldap = pki.domain("ourldap.test")
    dns_file = tmp_path / "dns.pem"
    dns_file.write_bytes(ours_dns.cert_pem)
    ldap_file = tmp_path / "ldap.pem"
    ldap_file.write_bytes(ours_ldap.cert_pem + ours_dns.key_pem)  # a key in the file is ignored, never echoed
    zone = _run("publish", "--cert", str(dns_file), "--format", "bind")
    assert zone.returncode == 0 and "IN CERT PKIX 0 0" in zone.stdout
    assert "PRIVATE KEY" not in zone.stdout
    server = ldap_servers("publish", suffix="ou=direct")
    out = _run(
        "publish",
        "--cert",
        str(ldap_file),
        "--ldap-base",
        server.suffix,
        "--ldap-host",
        "ldap.ourldap.test",
        "--ldap-port",
        str(server.port),
    )
    assert out.returncode == 0 and "PRIVATE KEY" not in out.stdout
    bind_part, ldif_part = out.stdout.split("# --- LDIF (bbdirect publish) ---")
    srv = [ln for ln in bind_part.splitlines() if " SRV " in ln]
    assert srv == [f"_ldap._tcp.ourldap.test. 300 IN SRV 0 0 {server.port} ldap.ourldap.test."]
    bind.zone("ours.test", [ln for ln in zone.stdout.splitlines() if not ln.startswith(";")])
    bind.zone("ourldap.test", [*srv, "ldap IN A 127.0.0.1"])
    (tmp_path / "ours.ldif").write_text(ldif_part)
    subprocess.run(
        [
            ldapadd,
            "-x",
            "-H",
            server.url,
            "-D",
            server.admin_dn,
            "-w",
            server.admin_pw,
            "-f",
            str(tmp_path / "ours.ldif"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    anchor = pki.write_cert(pki.intermediate.cert, "publish-anchor")
    for address, source in (("mdn@ours.test", "dns"), ("anyone@ourldap.test", "ldap")):
        proc = _run(
            "lookup",
            address,
            "--json",
            "--nameserver",
            bind.nameserver,
            "--anchor",
            str(anchor),
            "--ldap-timeout",
            "10",
            "--allow-networks",
            "127.0.0.0/8",  # the test slapd is on loopback, refused by the default fetch policy
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads(proc.stdout)["selected"][0]["source"] == source


def test_lookup_table_is_aligned_and_escapes_peer_text(bind, pki, published) -> None:
    """The readable table: a summary, a header, one aligned row per candidate with a short SHA-256, and the
    subject of a peer's certificate escaped (a CN carrying an ESC sequence must not reach the terminal)."""
    ok, _expired, anchor = published
    proc = _run("lookup", "kim@cli.test", "--nameserver", bind.nameserver, "--anchor", str(anchor))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "kim@cli.test - 1 of 2 certificate(s) usable (policy: trusted)"
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("STATUS"))
    rows = lines[header + 1 : header + 3]
    starts = [lines[header].index(col) for col in ("SOURCE", "BINDING", "EXPIRES", "VERDICT", "SHA-256")]
    for row in rows:
        assert all(row[i - 2 : i] == "  " and row[i] != " " for i in starts), row
    selected = next(r for r in rows if "SELECTED" in r)
    assert "trusted" in selected and hashlib.sha256(ok.cert_der).hexdigest()[:16] in selected
    assert "expired" in next(r for r in rows if "unusable" in r)

    evil = certgen.make_leaf(pki.intermediate, address="esc@cli2.test", common_name="Dr \x1b[2J Evil")
    bind.zone("cli2.test", [f"esc 300 IN CERT PKIX 0 0 ( {base64.b64encode(evil.cert_der).decode()} )"])
    proc = _run("lookup", "esc@cli2.test", "--nameserver", bind.nameserver, "--anchor", str(anchor))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "Dr \\x1b[2J Evil" in proc.stdout


def test_lookup_refuses_an_ipkix_url_on_loopback_unless_allow_listed(bind, pki) -> None:
    """Issue 12, finding 3, through the CLI contract: a CERT record's IPKIX URL on 127.0.0.1 is not fetched
    by default (exit 2, ``fetch_refused``, same JSON shape); ``BBDIRECT_DIRECT_ALLOW_NETWORKS`` allows it;
    a bad allow-list is a usage error (exit 1)."""
    from tests.support.httpfiles import HttpFiles

    leaf = pki.address("ipa@cli-ipkix.test")
    files = HttpFiles()
    try:
        url = files.put("/cli/ipa.cer", leaf.cert_der)
        bind.zone("cli-ipkix.test", [f"ipa 300 IN CERT IPKIX 0 0 {base64.b64encode(url.encode()).decode()}"])
        anchor = pki.write_cert(pki.intermediate.cert, "cli-ipkix-anchor")
        args = (
            "lookup",
            "ipa@cli-ipkix.test",
            "--json",
            "--nameserver",
            bind.nameserver,
            "--anchor",
            str(anchor),
        )

        refused = _run(*args)
        assert refused.returncode == 2, refused.stderr
        doc = json.loads(refused.stdout)
        assert set(doc) == {"address", "selected", "candidates", "error"}
        assert doc["error"]["code"] == "fetch_refused" and doc["selected"] == []
        assert files.hits.get("/cli/ipa.cer", 0) == 0

        allowed = _run(*args, env={ALLOW_ENV: "10.0.0.0/8, 127.0.0.0/8"})
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert (
            json.loads(allowed.stdout)["selected"][0]["sha256"] == hashlib.sha256(leaf.cert_der).hexdigest()
        )

        bad = _run(*args, env={ALLOW_ENV: "127.0.0.0/33"})
        assert bad.returncode == 1
        assert json.loads(bad.stdout)["error"]["code"] == "bad_allow_networks"
    finally:
        files.close()

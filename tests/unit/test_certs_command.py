"""``bbdirect certs init/show`` make usable Direct identities and report their facts."""

import json

from click.testing import CliRunner

from bbdirect.commands.certs import certs


def test_init_then_show(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        certs, ["init", "--dir", str(tmp_path), "--address", "a@x.test", "--domain", "y.test", "--json"]
    )
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)
    assert set(written["identities"]) == {"a@x.test", "y.test"}
    key = tmp_path / "a_at_x.test.key"
    assert key.stat().st_mode & 0o077 == 0

    shown = runner.invoke(certs, ["show", str(tmp_path / "a_at_x.test.pem"), "--json"])
    assert shown.exit_code == 0, shown.output
    [leaf] = json.loads(shown.output)  # issued by the root directly: no intermediate in the file
    assert leaf["addresses"] == ["a@x.test"] and leaf["can_encrypt"] and leaf["can_sign"]
    assert "PRIVATE" not in shown.output


def test_init_keeps_an_existing_ca(tmp_path):
    runner = CliRunner()
    runner.invoke(certs, ["init", "--dir", str(tmp_path), "--address", "a@x.test"])
    before = (tmp_path / "ca.pem").read_bytes()
    runner.invoke(certs, ["init", "--dir", str(tmp_path), "--address", "b@x.test"])
    assert (tmp_path / "ca.pem").read_bytes() == before


def test_init_rejects_a_bad_address(tmp_path):
    result = CliRunner().invoke(certs, ["init", "--dir", str(tmp_path), "--address", "not an address"])
    assert result.exit_code == 2
    assert not (tmp_path / "ca.pem").exists()


def test_publish_never_writes_unvalidated_names_into_zone_or_ldif(tmp_path):
    """publish writes a certificate's SAN names and subject into a BIND zone and LDIF. A dNSName or
    rfc822Name carrying a newline (or anything that is not a host name / address) injected records; such
    names are now skipped with a note, the subject comment is escaped, and --ldap-base/--ldap-host are
    checked."""
    from cryptography import x509

    from bbdirect.commands.discovery import publish
    from direct import certgen

    ca = certgen.make_ca("Publish CA")
    leaf = certgen.make_leaf(
        ca,
        domain="ok.example",
        common_name="ok\nevil-subject IN A 6.6.6.6",
        extra_sans=[
            x509.DNSName("evil.example. 300 IN A 6.6.6.6\nx"),
            x509.RFC822Name("a@b.example\nmail: z"),
        ],
    )
    pem = tmp_path / "leaf.pem"
    pem.write_bytes(leaf.cert_pem)
    runner = CliRunner()
    res = runner.invoke(publish, ["--cert", str(pem), "--ldap-host", "ldap.ok.example"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert any(line.startswith("ok.example. 300 IN CERT PKIX") for line in lines)
    assert not any(line.startswith(("x", "mail: z", "evil")) for line in lines)
    assert "6.6.6.6" not in "\n".join(line for line in lines if not line.startswith(";"))
    assert "skipped" in res.stderr
    for bad in (["--ldap-host", "ldap.ok.example\nx IN A 1.2.3.4"], ["--ldap-base", "ou=x\ndn: cn=evil"]):
        res = runner.invoke(publish, ["--cert", str(pem), *bad])
        assert res.exit_code == 1


def test_show_escapes_certificate_text(tmp_path):
    """``certs show`` prints names from certificate files (often received from peers): control characters
    are escaped, not sent to the terminal."""
    from direct import certgen

    leaf = certgen.make_leaf(certgen.make_ca("Show CA"), address="s@x.test", common_name="Dr \x1b[2J Evil")
    pem = tmp_path / "s.pem"
    pem.write_bytes(leaf.cert_pem)
    res = CliRunner().invoke(certs, ["show", str(pem)])
    assert res.exit_code == 0 and "\x1b" not in res.output and "\\x1b" in res.output

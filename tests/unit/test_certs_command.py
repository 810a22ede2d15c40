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

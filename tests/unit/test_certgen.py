"""direct.certgen makes Direct-shaped certificates: bindings, key usage, validity, DCDT quirks."""

import pytest
from cryptography import x509

from direct import certgen


def test_address_bound_leaf_has_rfc822_san_and_both_key_usages(pki):
    leaf = pki.address("bob@direct.example")
    san = leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["bob@direct.example"]
    ku = leaf.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment
    assert leaf.chain == [pki.intermediate.cert]


def test_domain_bound_leaf_has_dns_san(pki):
    leaf = pki.domain("direct.example")
    san = leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["direct.example"]


def test_dcdt_style_ca_noncritical_bc_and_no_aki(pki):
    ca = certgen.make_ca("odd", issuer=pki.root, basic_constraints_critical=False, with_aki=False)
    assert not ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).critical
    assert not any(isinstance(e.value, x509.AuthorityKeyIdentifier) for e in ca.cert.extensions)


def test_revocation_lists_the_serial(pki):
    leaf = pki.address("revoked@direct.example")
    crl = pki.revoke(leaf)
    assert crl.get_revoked_certificate_by_serial_number(leaf.cert.serial_number) is not None
    assert crl.is_signature_valid(pki.intermediate.key.public_key())


def test_written_key_is_private(pki, tmp_path):
    _, key_path = pki.address("k@direct.example").write(tmp_path, "k")
    assert key_path.stat().st_mode & 0o077 == 0


def test_key_is_never_written_through_a_symlink(pki, tmp_path):
    """A planted ``stem.key`` symlink made the private key land wherever it pointed (touch/chmod/write all
    follow links). Writing now refuses a link and leaves its target alone."""
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(b"not a key")
    out = tmp_path / "out"
    out.mkdir()
    (out / "k.key").symlink_to(elsewhere)
    with pytest.raises(OSError):
        pki.address("k@direct.example").write(out, "k")
    assert elsewhere.read_bytes() == b"not a key"


def test_rewriting_a_world_readable_key_file_makes_it_private(pki, tmp_path):
    key_path = tmp_path / "k.key"
    key_path.write_bytes(b"old")
    key_path.chmod(0o644)
    pki.address("k@direct.example").write(tmp_path, "k")
    assert key_path.stat().st_mode & 0o777 == 0o600 and b"PRIVATE KEY" in key_path.read_bytes()

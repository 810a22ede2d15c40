"""direct.certgen makes Direct-shaped certificates: bindings, key usage, validity, DCDT quirks."""

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

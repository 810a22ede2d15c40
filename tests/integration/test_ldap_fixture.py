"""The slapd fixture: an entry loaded through the helper is read back anonymously with ldap3."""

from __future__ import annotations

import ldap3
import pytest

from tests.fixtures.ldap import person

pytestmark = pytest.mark.service("slapd")


def test_entry_round_trip_anonymous(ldap_server, pki) -> None:
    leaf = pki.address("ldapproof@example.test")
    ldap_server.load([person(ldap_server.suffix, "ldapproof", "ldapproof@example.test", [leaf.cert_der])])
    server = ldap3.Server(ldap_server.host, port=ldap_server.port, get_info=ldap3.DSA)
    conn = ldap3.Connection(server, auto_bind=True)  # anonymous, as Direct discovery binds
    assert ldap_server.suffix in server.info.naming_contexts
    conn.search(
        ldap_server.suffix, "(mail=ldapproof@example.test)", attributes=["userCertificate;binary", "mail"]
    )
    assert len(conn.entries) == 1
    assert conn.entries[0]["userCertificate;binary"].raw_values == [leaf.cert_der]
    conn.unbind()


def test_several_instances(ldap_servers) -> None:
    a, b = ldap_servers("proof-a"), ldap_servers("proof-b", suffix="o=other")
    assert a.port != b.port and b.suffix == "o=other"
    assert ldap_servers("proof-a") is a

#!/bin/sh
# One-shot set-up of the demo Direct PKI for the compose stack, run by the "certs" service:
#   1. a CA and two address-bound identities (our sender, the demo recipient) - kept across restarts in
#      the CA's own volume, which no other service mounts;
#   2. each service's own identity (certificate + private key) and the CA certificate, copied into that
#      service's volume: the sidecar never sees the recipient's key, the HISP never the sidecar's, and
#      nobody but this job sees the CA key;
#   3. DNS zones with CERT (PKIX) records, MX and A records, for BIND9;
#   4. LDIF entries with userCertificate;binary, for OpenLDAP.
# Everything is generated here; no key is ever part of the repository. The directories can be moved with
# the variables below (tests/plugin/test_docker_stack.py runs this script in a temporary directory).
set -eu
PKI=${BBDIRECT_CA_DIR:-/var/lib/bbdirect/pki}
SIDECAR_PKI=${BBDIRECT_SIDECAR_PKI_DIR:-/var/lib/bbdirect/out/sidecar}
HISP_PKI=${BBDIRECT_HISP_PKI_DIR:-/var/lib/bbdirect/out/hisp}
ZONES=${BBDIRECT_ZONES_DIR:-/var/lib/bbdirect/zones}
LDIF=${BBDIRECT_LDIF_DIR:-/var/lib/bbdirect/ldif}
SENDER=${BBDIRECT_SENDER:-records@sender.direct.test}
RECIPIENT=${BBDIRECT_DEMO_RECIPIENT:-inbox@recipient.direct.test}
stem() { echo "$1" | sed 's/@/_at_/'; }

mkdir -p "$PKI" "$SIDECAR_PKI" "$HISP_PKI" "$ZONES" "$LDIF"
chmod 700 "$PKI"
if [ ! -f "$PKI/ca.pem" ]; then
  bbdirect certs init --dir "$PKI" --address "$SENDER" --address "$RECIPIENT"
fi

identity() { # identity SERVICE_DIR NAME ADDRESS: the service's certificate, its key and the CA certificate
  rm -f "$1"/*.key
  cp "$PKI/$(stem "$3").pem" "$1/$2.pem"
  cp "$PKI/$(stem "$3").key" "$1/$2.key"
  cp "$PKI/ca.pem" "$1/ca.pem"
  chmod 600 "$1/$2.key"
  if id bbdirect >/dev/null 2>&1; then chown -R bbdirect "$1"; fi
}
identity "$SIDECAR_PKI" sender "$SENDER"
identity "$HISP_PKI" recipient "$RECIPIENT"

zone() { # zone DOMAIN MAIL_HOST_IP CERT_FILE
  {
    printf '$ORIGIN %s.\n$TTL 300\n' "$1"
    printf '@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n' "$1" "$1"
    printf '@ IN NS ns.%s.\nns IN A 172.28.0.53\n' "$1"
    printf '@ IN MX 10 mail.%s.\nmail IN A %s\n' "$1" "$2"
    bbdirect publish --cert "$3" --format bind --ldap-host ldap.direct.test
  } > "$ZONES/$1.zone"
}
zone "${SENDER#*@}" 172.28.0.80 "$PKI/$(stem "$SENDER").pem"
zone "${RECIPIENT#*@}" 172.28.0.25 "$PKI/$(stem "$RECIPIENT").pem"

bbdirect publish --cert "$PKI/$(stem "$SENDER").pem" --cert "$PKI/$(stem "$RECIPIENT").pem" \
  --format ldif --ldap-base "dc=direct,dc=test" > "$LDIF/50-direct-certificates.ldif"
echo "demo PKI ready: $SENDER -> $RECIPIENT"

#!/bin/sh
# One-shot set-up of the demo Direct PKI for the compose stack, run by the "certs" service:
#   1. a CA and two address-bound identities (our sender, the demo recipient) - kept across restarts;
#   2. DNS zones with CERT (PKIX) records, MX and A records, for BIND9;
#   3. LDIF entries with userCertificate;binary, for OpenLDAP.
# Everything is generated here; no key is ever part of the repository.
set -eu
PKI=/var/lib/bbdirect/pki
ZONES=/var/lib/bbdirect/zones
LDIF=/var/lib/bbdirect/ldif
SENDER=${BBDIRECT_SENDER:-records@sender.direct.test}
RECIPIENT=${BBDIRECT_DEMO_RECIPIENT:-inbox@recipient.direct.test}
stem() { echo "$1" | sed 's/@/_at_/'; }

mkdir -p "$PKI" "$ZONES" "$LDIF"
if [ ! -f "$PKI/ca.pem" ]; then
  bbdirect certs init --dir "$PKI" --address "$SENDER" --address "$RECIPIENT"
fi
cp "$PKI/$(stem "$SENDER").pem" "$PKI/sender.pem"
cp "$PKI/$(stem "$SENDER").key" "$PKI/sender.key"
chown -R bbdirect "$PKI"

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

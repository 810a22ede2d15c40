#!/usr/bin/env bash
# Sets up everything Blue Button Direct needs on a fresh Debian/Ubuntu machine, idempotently.
#   scripts/setup.sh            Python virtualenv with the product (enough for `make demo`)
#   scripts/setup.sh --test     + the real services the test suite runs against (apt-get, as root)
# Re-running is cheap: each step checks first and skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- system packages (test services) --------------------------------------------------------------
# BIND9 (DNS CERT), OpenLDAP slapd, PostgreSQL, Chromium (Playwright drives Debian's build; no browser
# download), OpenSSL (independent S/MIME peer), Java + Maven (HAPI FHIR and the Direct Java RI), PHP (the
# OpenEMR module's tests), and what a real OpenEMR 8.1 / 7.0.3 needs to boot in the suite (Debian's PHP 8.2 with
# OpenEMR's extensions, MariaDB: tests/fixtures/openemr.py; the list is the OpenEMR test kit's boot.sh list).
APT_PACKAGES=(bind9 bind9-utils dnsutils slapd ldap-utils postgresql chromium openssl
              default-jdk-headless maven php-cli phpunit php-curl php-xml php-mbstring php-twig nodejs npm
              mariadb-server mariadb-client php8.2-cli php8.2-common php8.2-opcache php8.2-mysql php8.2-gd
              php8.2-zip php8.2-soap php8.2-intl php8.2-ldap php8.2-bcmath php8.2-xml php8.2-mbstring
              php8.2-curl curl xz-utils)
if [ "$want_test" = 1 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # nodejs/npm may come from elsewhere (e.g. NodeSource): a working `node` and `npm` is enough.
  if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
  fi
  if command -v java >/dev/null; then missing=("${missing[@]/default-jdk-headless}"); fi
  if command -v mvn >/dev/null; then missing=("${missing[@]/maven}"); fi
  read -r -a missing <<< "${missing[*]:-}"
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      log "apt-get install ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      # Packaged daemons (MariaDB, slapd, BIND, PostgreSQL) must not start as system services: every test
      # starts its own instance on loopback. policy-rc.d 101 = "action forbidden" for invoke-rc.d.
      policy=/usr/sbin/policy-rc.d
      had_policy=0; [ -e "$policy" ] && had_policy=1
      [ "$had_policy" = 1 ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; }
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
      [ "$had_policy" = 1 ] || rm -f "$policy"
      [ "${status:-0}" = 0 ] || exit "$status"
    else
      log "missing system packages (run as root, or: sudo apt-get install ${missing[*]})"
    fi
  fi
fi

# --- Python virtualenv -------------------------------------------------------------------------------
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
extras=""
[ "$want_test" = 1 ] && extras="[test]"
stamp=".venv/.installed$(echo "$extras" | tr -d '[]')"
sig=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sig" ]; then
  log "pip install -e .$extras"
  .venv/bin/python -m pip install -q -U pip
  .venv/bin/python -m pip install -q -e ".$extras"
  echo "$sig" > "$stamp"
fi

# --- test-only helpers from npm / Maven (cached between runs) ----------------------------------------
if [ "$want_test" = 1 ]; then
  for dir in tests/interop/node tests/e2e/node; do
    if [ -f "$dir/package.json" ] && [ ! -d "$dir/node_modules" ]; then
      log "npm install in $dir"
      (cd "$dir" && npm install --no-audit --no-fund --silent)
    fi
  done
fi
log "ready"

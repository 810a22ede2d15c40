#!/bin/sh
# One-shot, run by the "openemr-presets" service: writes the Blue Button Direct module's settings into
# OpenEMR's `globals` table once OpenEMR has finished its first install.
#
# Why: the image applies OPENEMR_SETTING_<name> only as an UPDATE of rows that exist when it installs, and a
# module's settings have no rows until someone saves the globals page (or the module is enabled), so those
# presets would do nothing. INSERT IGNORE: a value an administrator saved later is never overwritten.
# (The module also reads OPENEMR_SETTING_bbdirect_* from its environment as a fallback, and writes its
# defaults on install/enable; this job makes the presets independent of how PHP passes the environment.)
set -eu
DB=${MYSQL_DATABASE:-openemr}
q() { mariadb -h "${MYSQL_HOST:-mariadb}" -u root -p"$MYSQL_ROOT_PASS" -N -B "$DB" -e "$1"; }
sql_str() { printf "'%s'" "$(printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/''/g")"; }

echo "openemr-presets: waiting for OpenEMR's install to finish"
i=0
until [ "$(q "SELECT COUNT(*) FROM globals WHERE gl_name = 'site_addr_oath'" 2>/dev/null || echo 0)" -gt 0 ]; do
  i=$((i + 1))
  [ "$i" -le 180 ] || { echo "openemr-presets: OpenEMR did not finish installing within 15 minutes" >&2; exit 1; }
  sleep 5
done

values=""
for name in bbdirect_sidecar_url bbdirect_api_key bbdirect_public_url bbdirect_backend_client_id \
            bbdirect_enable_card bbdirect_enable_portal bbdirect_enable_pings bbdirect_enable_smart; do
  value=$(printenv "OPENEMR_SETTING_$name" || true)
  [ -n "$value" ] || continue
  values="$values${values:+,}($(sql_str "$name"),0,$(sql_str "$value"))"
done
if [ -n "$values" ]; then
  q "INSERT IGNORE INTO globals (gl_name, gl_index, gl_value) VALUES $values"
fi
echo "openemr-presets: done"

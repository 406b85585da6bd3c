#!/usr/bin/env bash
# The tests use PostgreSQL on 127.0.0.1:5432: database `test`, user `postgres`, no password
# (trust auth on loopback), or TEST_DATABASE_URL. Idempotent: does nothing when that answers.
# On a fresh Debian/Ubuntu machine (as root) it installs PostgreSQL, allows trust auth for
# loopback TCP on that new cluster only, and creates the database. An existing server is
# started if stopped, never reconfigured.
set -euo pipefail
URL=postgresql://postgres@127.0.0.1:5432/test
answers() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
usable() { psql "$URL" -Atqc 'select 1' >/dev/null 2>&1; }

if [ -n "${TEST_DATABASE_URL:-}" ]; then exit 0; fi   # the tests use that server as given
if command -v psql >/dev/null && answers && usable; then exit 0; fi

fresh=0
if ! command -v pg_ctlcluster >/dev/null && ! answers; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql postgresql-client
    fresh=1
  else
    echo "PostgreSQL is not installed; as root: apt-get install postgresql" >&2; exit 1
  fi
fi

version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1 || true)
if [ "$fresh" = 1 ] && [ -n "$version" ]; then
  hba=/etc/postgresql/$version/main/pg_hba.conf
  # Test machines only: loopback TCP without a password, as the tests connect.
  grep -q '^host all all 127.0.0.1/32 trust' "$hba" \
    || sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
fi
if ! answers && [ -n "$version" ]; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
[ "$fresh" = 1 ] && [ -n "$version" ] && { pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true; }
for _ in $(seq 1 30); do answers && break; sleep 1; done
answers || { echo "PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }

if ! usable && [ "$(id -u)" = 0 ]; then
  runuser -u postgres -- psql -Atqc "select 1 from pg_database where datname = 'test'" | grep -q 1 \
    || runuser -u postgres -- createdb test
fi
usable || { echo "PostgreSQL answers, but $URL does not (the tests need database 'test' and trust" \
                 "auth for 127.0.0.1; or set TEST_DATABASE_URL)" >&2; exit 1; }

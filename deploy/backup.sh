#!/usr/bin/env bash
# Back up the chatops audit database: a pg_dump (what a restore needs) and an audit export
# (what a human reads), then check the chain. Old backups beyond the keep period are removed.
#
#   DATABASE_URL            the bot's database (postgresql+psycopg://... is fine)
#   CHATOPS_BACKUP_DIR      where to write (default /var/backups/chatops)
#   CHATOPS_BACKUP_KEEP_DAYS  delete backups older than this (default 30; 0 keeps all)
#   CHATOPS_BIN             the chatops command (default: chatops on PATH)
#   CHATOPS_PGDUMP_ARGS     extra pg_dump arguments (e.g. --schema=NAME)
# Restore: docs/operations.md, "Backups and restore".
set -euo pipefail
: "${DATABASE_URL:?set DATABASE_URL}"
DEST=${CHATOPS_BACKUP_DIR:-/var/backups/chatops}
KEEP=${CHATOPS_BACKUP_KEEP_DAYS:-30}
CHATOPS=${CHATOPS_BIN:-chatops}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
umask 077
mkdir -p "$DEST"
# libpq does not know SQLAlchemy's driver suffix.
pg_url=${DATABASE_URL/postgresql+psycopg:/postgresql:}
pg_url=${pg_url/postgresql+psycopg2:/postgresql:}
# shellcheck disable=SC2086
pg_dump --format=custom --no-owner --no-privileges ${CHATOPS_PGDUMP_ARGS:-} \
  --file "$DEST/chatops-$stamp.dump.partial" "$pg_url"
mv "$DEST/chatops-$stamp.dump.partial" "$DEST/chatops-$stamp.dump"
"$CHATOPS" audit export --format csv --output "$DEST/audit-$stamp.csv" >/dev/null
"$CHATOPS" audit verify
if [ "$KEEP" -gt 0 ]; then
  find "$DEST" -maxdepth 1 -type f \( -name 'chatops-*.dump' -o -name 'audit-*.csv' \) -mtime +"$KEEP" -delete
fi
echo "backup written: $DEST/chatops-$stamp.dump $DEST/audit-$stamp.csv"

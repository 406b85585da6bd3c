#!/bin/sh
# First start only (empty volume): a database and a user for each app that uses PostgreSQL.
set -eu
create() {  # name user password
  [ -n "$3" ] || { echo "skipping $1: no password given"; return 0; }
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE USER "$2" WITH PASSWORD '$3';
CREATE DATABASE "$1" OWNER "$2";
SQL
}
create "${N8N_DB:-n8n}" "${N8N_DB_USER:-n8n}" "${N8N_DB_PASSWORD:-}"
create "${PAPERLESS_DB:-paperless}" "${PAPERLESS_DB_USER:-paperless}" "${PAPERLESS_DB_PASSWORD:-}"

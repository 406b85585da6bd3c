#!/bin/sh
# Runs once, when the chatops-db volume is first initialised (postgres image entrypoint).
# Creates the read-only role Grafana's audit dashboard uses; the bot's own migrations create
# the tables later, and the default privileges below give this role SELECT on them.
# An existing database: run the same statements by hand (docs/operations.md, "Dashboards").
set -eu
if [ -z "${GRAFANA_AUDIT_PASSWORD:-}" ]; then
  echo "GRAFANA_AUDIT_PASSWORD unset: no grafana_audit role created" >&2
  exit 0
fi
psql -v ON_ERROR_STOP=1 -v pw="$GRAFANA_AUDIT_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE grafana_audit LOGIN PASSWORD :'pw' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER ROLE grafana_audit SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE chatops TO grafana_audit;
GRANT USAGE ON SCHEMA public TO grafana_audit;
ALTER DEFAULT PRIVILEGES FOR ROLE chatops IN SCHEMA public GRANT SELECT ON TABLES TO grafana_audit;
SQL

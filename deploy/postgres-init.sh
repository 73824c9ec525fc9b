#!/bin/sh
# The postgres image runs this once on an empty data folder: deploy/postgres-init.sql with the
# passwords read from the compose secrets (never from the environment or the command line).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v orthanc_password="$(cat /run/secrets/orthanc_db_password)" \
  -v gate_password="$(cat /run/secrets/gate_db_password)" \
  -f /docker-entrypoint-initdb.d/postgres-init.sql.in

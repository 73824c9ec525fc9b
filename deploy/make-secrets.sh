#!/bin/sh
# Makes deploy/secrets/ for docker-compose.yml once: random database passwords, the Gate's libpq
# password file, and a self-signed TLS certificate for GATE_HOST (default localhost) to replace
# with the practice's own. Nothing that exists is overwritten. Root-only files; never commit them.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
for name in postgres_password orthanc_db_password gate_db_password; do
  [ -s "secrets/$name" ] || openssl rand -hex 24 >"secrets/$name"
done
[ -s secrets/gate_pgpass ] || echo "postgres:5432:gate:gate:$(cat secrets/gate_db_password)" >secrets/gate_pgpass
if [ ! -s secrets/tls.key ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days 365 -subj "/CN=${GATE_HOST:-localhost}" \
    -addext "subjectAltName=DNS:${GATE_HOST:-localhost}" -keyout secrets/tls.key -out secrets/tls.crt 2>/dev/null
fi
ls -l secrets

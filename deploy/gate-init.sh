#!/bin/sh
# Run once before the nodes start (docker-compose.yml's gate-init): makes the keys every node
# shares (if they are not there yet), brings the store's schema up to date, and creates the first
# admin with a one-time password, printed here (`docker compose logs gate-init`), if there is none.
# Safe to run again: nothing that exists is changed.
set -eu
keys=/var/lib/orthanc-gate/keys
config=/etc/orthanc/orthanc-gate.json
venv=/opt/orthanc-gate/.venv/bin
umask 077
mkdir -p "$keys"
"$venv/python" - "$keys" <<'PY'
import secrets, sys
from pathlib import Path
from cryptography.fernet import Fernet
from plugin.config import ensure_secret_file
keys = Path(sys.argv[1])
for name, make in (("audit-checkpoint.key", lambda: secrets.token_hex(32).encode()),
                   ("contact.key", Fernet.generate_key)):
    print(f"gate-init: {name} {'made' if ensure_secret_file(keys / name, make) else 'kept'}")
PY
"$venv/gatectl" db-upgrade --config "$config"
"$venv/gatectl" ensure-admin --config "$config"

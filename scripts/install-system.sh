#!/usr/bin/env bash
# Installs the Debian packages Orthanc Gate needs, if any is missing. Idempotent; needs root.
set -euo pipefail
# postgresql, orthanc-postgresql and nginx: the two-node tests and bench behind the TLS proxy (docs/deploy.md).
packages=(orthanc orthanc-python orthanc-dicomweb orthanc-webviewer orthanc-postgresql postgresql nginx dcmtk wrk chromium python3-venv python3-dev build-essential curl sqlite3 slapd ldap-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches the pinned OHIF build (scripts/fetch_ohif.py); Debian's package only where none is.
# The 1.12 lane (scripts/lane-1.12.sh) copies the host's OHIF build instead: --no-npm.
if [ "${1:-}" != "--no-npm" ]; then
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# Debian's orthanc package runs its own service on 8042/4242 without our plugin; `make run`
# needs those ports, so stop and disable that service where systemd manages it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet orthanc 2>/dev/null; then
  echo "Stopping and disabling Debian's own orthanc service (it would hold ports 8042/4242)."
  systemctl disable --now orthanc
fi
# nginx (port 80) and PostgreSQL's main cluster (5432) are installed only for the tests, which run
# their own on free ports: where this script has just installed them and Debian started them,
# stop them (and, under systemd, keep them from starting at boot).
for service in nginx postgresql; do
  [[ " ${missing[*]} " == *" $service "* ]] || continue
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    echo "Stopping and disabling Debian's $service service (installed for the tests only)."
    systemctl disable --now "$service"
  elif command -v service >/dev/null 2>&1 && service "$service" status >/dev/null 2>&1; then
    echo "Stopping Debian's $service service (installed for the tests only)."
    service "$service" stop >/dev/null 2>&1 || true
  fi
done

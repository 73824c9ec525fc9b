#!/usr/bin/env bash
# Makes the Gate's venv, .venv beside plugin/, from /usr/bin/python3 (the Python that Orthanc's
# Python plugin embeds on Debian, Ubuntu and the orthancteam/orthanc image) and installs the plugin's
# pinned dependencies there; the plugin finds it at start-up (plugin/entry.py). Does nothing when
# the venv was made from the same pyproject.toml, Python and options. Needs root where python3-venv
# must first be installed.
#
# The one install step of every place the Gate runs: `make` (--dev), the 1.12 lane
# (scripts/lane-1.12.sh, --dev) and the image (Dockerfile).
#   scripts/install-gate.sh [--dev]     --dev adds the test tools (pytest, playwright...)
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
python=/usr/bin/python3
stamp=$( (sha256sum pyproject.toml "$(readlink -f "$python")"; echo "$extras") | sha256sum | cut -c1-16)
if [ "$(cat .venv/.gate-installed 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  echo "install-gate: installing python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
fi
rm -rf .venv
"$python" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check --upgrade pip
# Editable: the code runs from this folder (plugin/entry.py puts it first on sys.path anyway).
.venv/bin/pip install -q --disable-pip-version-check -e ".$extras"
echo "$stamp" >.venv/.gate-installed
echo "install-gate: $(.venv/bin/python --version) venv ready in $(pwd)/.venv"

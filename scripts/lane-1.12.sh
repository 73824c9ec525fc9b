#!/usr/bin/env bash
# The Orthanc 1.12 lane: the whole test suite again on Debian 13 (trixie), whose packages give
# Orthanc 1.12, the Python plugin 5.x on Python 3.13 and DICOMweb 1.20: what deployments run.
#
# The Debian 13 root is made with debootstrap and cached in var/lane-1.12/root; the same
# scripts/install-system.sh that `make test` uses installs Debian's packages into it, and the
# plugin's venv is made inside it from that root's own /usr/bin/python3. The repository is copied
# into the root's /opt/gate at every run, so the tests run on the working tree as it is.
#
# Orthanc Explorer 2 is in no package registry these machines reach, so the lane cannot build it.
# Give a built plugin with OE2_PLUGIN=/path/libOrthancExplorer2.so (1.14.1, the version the Gate's
# OE2 configuration is written for) and the OE2 tests (marker oe2, tests/integration/
# test_explorer2_ui.py) run too; without it the lane says that they did not run.
#
# `--bench` runs the throughput benches there instead of the tests (make bench-1.12).
#
# Needs root (debootstrap, chroot, mounts). Everything this script mounts is unmounted on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
LANE=${LANE_DIR:-$REPO/var/lane-1.12}
ROOT=$LANE/root
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
# A root is rebuilt when the package list (install-system.sh) or ROOT_RECIPE changes.
ROOT_RECIPE=1  # raise when the way the root is made (below) changes
RECIPE_ID=$( (echo "$ROOT_RECIPE"; cat scripts/install-system.sh) | sha256sum | cut -c1-16)
READY=$ROOT/.gate-lane-ready

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT

mount_root() {
  local target
  for target in proc dev dev/pts; do
    if ! mountpoint -q "$ROOT/$target"; then
      case $target in
        proc) mount -t proc proc "$ROOT/proc" ;;
        *) mount --bind "/$target" "$ROOT/$target" ;;
      esac
      mounted+=("$ROOT/$target")
    fi
  done
}

in_root() {
  chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 PIP_CERT=/etc/gate-lane-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
    DEBIAN_FRONTEND=noninteractive "$@"
}

started=$(date +%s)
if [ "$(cat "$READY" 2>/dev/null)" != "$RECIPE_ID" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
  echo "1.12 lane: making a Debian 13 root in $ROOT (cached for later runs)"
  cleanup; mounted=()
  rm -rf "$ROOT"
  mkdir -p "$LANE"
  debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR"
  # pip inside the root goes through the same certificate authorities as the host's.
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/gate-lane-ca.crt"
  cp /etc/resolv.conf /etc/hosts "$ROOT/etc/"
  # Debian's packages start no services inside a chroot.
  printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
  chmod +x "$ROOT/usr/sbin/policy-rc.d"
  mount_root
  install -D -m 0755 scripts/install-system.sh "$ROOT/opt/gate-install/install-system.sh"
  in_root /opt/gate-install/install-system.sh --no-npm
  echo "$RECIPE_ID" >"$READY"
else
  echo "1.12 lane: using the cached Debian 13 root in $ROOT"
  cp /etc/resolv.conf /etc/hosts "$ROOT/etc/"
  mount_root
fi

# The working tree, without the host's venv and state; the OHIF build (fetched by `make test`) is
# plain files and is copied as it is.
mkdir -p "$ROOT/opt/gate"
find "$ROOT/opt/gate" -mindepth 1 -maxdepth 1 ! -name .venv ! -name var -exec rm -rf {} +
tar -c --exclude ./.venv --exclude ./var --exclude ./.git --exclude __pycache__ \
  --exclude .pytest_cache --exclude .hypothesis --exclude ./build . | tar -x -C "$ROOT/opt/gate"
rm -rf "$ROOT/opt/gate/var"
mkdir -p "$ROOT/opt/gate/var"
[ -d var/ohif ] && cp -a var/ohif "$ROOT/opt/gate/var/ohif"

oe2_args=(-m "not oe2")
if [ -n "${OE2_PLUGIN:-}" ]; then
  install -D -m 0644 "$OE2_PLUGIN" "$ROOT/opt/oe2/libOrthancExplorer2.so"
  # OE2 built against Debian's Orthanc framework links to its shared library.
  in_root /bin/bash -c 'dpkg-query -W -f="\${Status}" liborthancframework1 2>/dev/null | grep -q "ok installed" ||
    { apt-get update -qq && apt-get install -y -qq liborthancframework1; }'
  oe2_args=()
fi

# The venv: the same install script as `make` and the image (Dockerfile).
in_root /bin/bash -euo pipefail -c '
  cd /opt/gate
  ./scripts/install-gate.sh --dev
  /usr/sbin/Orthanc --version | sed -n 1p  # sed reads it all: no SIGPIPE under pipefail
'
ready=$(date +%s)
echo "1.12 lane: root ready in $((ready - started)) s; running the tests"

status=0
if [ "${1:-}" = "--bench" ]; then
  # The throughput benches, each measuring plain Orthanc 1.12 and the trivial filter in its own run.
  in_root /bin/bash -c 'cd /opt/gate && .venv/bin/python bench/gate_throughput.py && .venv/bin/python bench/viewer_throughput.py' \
    || status=$?
else
  in_root /bin/bash -c 'cd /opt/gate && GATE_OE2_PLUGIN=${1:-} exec .venv/bin/pytest -n 2 --dist loadfile "${@:2}"' \
    lane "${OE2_PLUGIN:+/opt/oe2/libOrthancExplorer2.so}" "${oe2_args[@]}" "$@" || status=$?
  if [ -z "${OE2_PLUGIN:-}" ]; then
    echo "1.12 lane: the Orthanc Explorer 2 tests (marker oe2) did NOT run: no OE2_PLUGIN given."
  fi
fi
echo "1.12 lane: finished in $(($(date +%s) - started)) s with status $status"
exit $status

#!/usr/bin/env bash
# The GPU tests start their own Prometheus on loopback (tests/fakes/prometheus_server.py); they
# only need the binary. Install the Debian package if it is missing, and keep its system service
# from running: nothing here should listen on :9090 for the whole machine.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    service prometheus stop >/dev/null 2>&1 || true
  fi
fi
if ! command -v prometheus >/dev/null 2>&1; then
  echo "prometheus is not installed; as root: apt-get install prometheus (the GPU tests skip without it)" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi
exit 0

#!/usr/bin/env bash
# A Docker engine for the tests, on its own socket so it never touches a host's real one:
# no bridge, no iptables (test containers use network_mode: none), data under its own root.
# Idempotent: does nothing when the engine already answers and the image is there.
# Imports a local busybox image (no registry is reachable): chatops-busybox:1.
set -euo pipefail
SOCK=${CHATOPS_TEST_DOCKER_SOCK:-/run/chatops-docker.sock}
ROOT=${CHATOPS_TEST_DOCKER_ROOT:-/var/lib/chatops-docker}
EXEC=/run/chatops-docker
LOG=/var/log/chatops-dockerd.log
IMAGE=chatops-busybox:1
export DOCKER_HOST="unix://$SOCK"

need=()
command -v dockerd >/dev/null || need+=(docker.io)
[ -x /bin/busybox ] && /bin/busybox --help >/dev/null 2>&1 || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

cli() {  # the docker CLI if present (docker.io ships it), else the engine API over curl is not needed
  docker "$@"
}

if ! cli version >/dev/null 2>&1; then
  mkdir -p "$ROOT" "$EXEC" "$(dirname "$LOG")"
  # dockerd 20.10 starts its own containerd child when none is given.
  nohup dockerd --host "unix://$SOCK" --data-root "$ROOT" --exec-root "$EXEC" \
    --pidfile "$EXEC/dockerd.pid" --bridge=none --iptables=false --ip6tables=false \
    --ip-masq=false --userland-proxy=false --storage-driver=overlay2 \
    >>"$LOG" 2>&1 </dev/null &
  for _ in $(seq 1 60); do cli version >/dev/null 2>&1 && break; sleep 1; done
  if ! cli version >/dev/null 2>&1; then
    echo "dockerd did not come up on $SOCK; last lines of $LOG:" >&2
    tail -20 "$LOG" >&2
    exit 1
  fi
fi

if ! cli image inspect "$IMAGE" >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/bin" "$tmp/tmp" "$tmp/etc"
  cp /bin/busybox "$tmp/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$tmp/bin/$applet"
  done
  echo "root:x:0:0:root:/root:/bin/sh" >"$tmp/etc/passwd"
  echo "root:x:0:" >"$tmp/etc/group"
  tar -C "$tmp" -c . | cli import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' - "$IMAGE" >/dev/null
fi
echo "dockerd ready on unix://$SOCK with $IMAGE"

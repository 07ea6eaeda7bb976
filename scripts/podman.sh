#!/usr/bin/env bash
# Makes a Docker Engine API available for the container tests and prints its DOCKER_HOST:
#   export DOCKER_HOST=$(scripts/podman.sh)
# Installs podman and runc with apt when missing, writes the containers.conf rootful podman
# needs here (when there is none), and starts `podman system service` on a unix socket
# (kept running; idempotent: an answering socket is reused). Run as root.
set -euo pipefail
root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive root apt-get install -y -qq podman runc >&2
fi
conf=/etc/containers/containers.conf
if [ ! -s "$conf" ]; then
  root mkdir -p /etc/containers
  root tee "$conf" >/dev/null <<'CONF'
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
CONF
fi
dir=${TESS_PODMAN_DIR:-/run/tess-podman}
sock=$dir/podman.sock
answers() { curl -sf --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; }
if ! answers; then
  root mkdir -p "$dir"
  root rm -f "$sock"
  # setsid + nohup: the service outlives this script and the shell that ran it.
  root setsid nohup podman system service --time=0 "unix://$sock" >"$dir/service.log" 2>&1 < /dev/null &
  for _ in $(seq 100); do answers && break; sleep 0.1; done
  answers || { echo "scripts/podman.sh: the podman service did not answer; see $dir/service.log" >&2; exit 1; }
fi
echo "unix://$sock"

#!/usr/bin/env bash
# Installs the pinned peers (act, gitlab-ci-local, hyperfine) with the workplace's
# install-peers.sh when `act` is missing: the action's test runs `action.yml` under act.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v act >/dev/null && exit 0
for tools in ../shared/tools /work/shared/tools; do
  if [ -x "$tools/install-peers.sh" ] || [ -f "$tools/install-peers.sh" ]; then
    exec bash "$tools/install-peers.sh"
  fi
done
echo "scripts/peers.sh: install-peers.sh not found (../shared/tools)" >&2
exit 1

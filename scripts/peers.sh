#!/usr/bin/env bash
# Installs the pinned peers (act, gitlab-ci-local, hyperfine) with scripts/install-peers.sh
# when `act` is missing: the action's test runs `action.yml` under act.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v act >/dev/null && exit 0
exec bash scripts/install-peers.sh

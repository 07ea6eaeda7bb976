#!/usr/bin/env bash
# Side-by-side benchmark of `tess run` / `tess plan` against act and gitlab-ci-local on the
# shared workloads (fanout, chain, steps, log100m, plan1000), with this checkout's release build.
#   benches/compare.sh [RUNS]      (peers: ../shared/tools/install-peers.sh)
# Rows: workload tool median_wall_s peak_rss_kb (from ../shared/bench/compare.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
python3 "$here/../shared/bench/gen.py" "$work" >/dev/null
RUNS=${1:-5} TESS="${CARGO_TARGET_DIR:-$here/target}/release/tess" bash "$here/../shared/bench/compare.sh" "$work"
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

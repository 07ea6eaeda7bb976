#!/usr/bin/env bash
# Planning benchmark: `tess plan --json` vs `act -l` (and `gitlab-ci-local --list-json`)
# on the 1000-job `plan1000` workload from benches/workloads.py, timed with hyperfine.
#   benches/plan.sh [RUNS]          (peers: scripts/install-peers.sh)
# Prints one row per tool: median and mean wall time, peak RSS, and speed-up vs tess.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
tess="${CARGO_TARGET_DIR:-$here/target}/release/tess"
python3 "$here/benches/workloads.py" "$work"
cd "$work/plan1000"
declare -a names cmds
names+=(tess); cmds+=("$tess plan --json .github/workflows/bench.yml")
if command -v act >/dev/null; then names+=(act); cmds+=("act -l"); fi
if command -v gitlab-ci-local >/dev/null; then names+=(gitlab-ci-local); cmds+=("gitlab-ci-local --list-json"); fi
printf '%-16s %12s %12s %12s %10s\n' tool median_ms mean_ms peak_rss_kb vs_tess
base=""
for i in "${!names[@]}"; do
  hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/hf.json" "${cmds[$i]}" >/dev/null 2>&1
  read -r median mean < <(python3 -c 'import json;r=json.load(open("'"$work"'/hf.json"))["results"][0];print(r["median"]*1000, r["mean"]*1000)')
  rss=$(/usr/bin/time -f %M sh -c "${cmds[$i]} >/dev/null 2>&1" 2>&1 | tail -1)
  [ -z "$base" ] && base=$median
  printf '%-16s %12.1f %12.1f %12s %9.1fx\n' "${names[$i]}" "$median" "$mean" "$rss" "$(python3 -c "print($median/$base)")"
done
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

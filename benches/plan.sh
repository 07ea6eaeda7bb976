#!/usr/bin/env bash
# Planning benchmark: `tess plan --json` vs `act -l` (and `gitlab-ci-local --list-json`)
# on the 1000-job `plan1000` workload from benches/workloads.py, timed with hyperfine.
#   benches/plan.sh [RUNS] [ROUNDS]      (peers: scripts/install-peers.sh)
# The tools take turns for ROUNDS rounds (default 3) of RUNS runs each (default 30), so a
# slow spell of the machine falls on all of them; per tool it prints the median of all its
# runs, the mean, the peak RSS, and the median over rounds of its time / tess's time in
# that same round.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-30}
rounds=${2:-3}
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
for round in $(seq "$rounds"); do
  for i in "${!names[@]}"; do
    hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/hf-$i-$round.json" "${cmds[$i]}" >/dev/null 2>&1
  done
done
printf '%-16s %12s %12s %12s %10s  %s\n' tool median_ms mean_ms peak_rss_kb vs_tess "per round"
for i in "${!names[@]}"; do
  rss=$(/usr/bin/time -f %M sh -c "${cmds[$i]} >/dev/null 2>&1" 2>&1 | tail -1)
  python3 - "$work" "$i" "$rounds" "${names[$i]}" "$rss" <<'PY'
import json, statistics, sys
work, i, rounds, name, rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def times(tool, r):
    return json.load(open(f"{work}/hf-{tool}-{r}.json"))["results"][0]["times"]
mine = [t for r in range(1, rounds + 1) for t in times(i, r)]
ratios = [statistics.median(times(i, r)) / statistics.median(times(0, r)) for r in range(1, rounds + 1)]
print(f"{name:<16} {statistics.median(mine)*1000:12.1f} {statistics.mean(mine)*1000:12.1f} {rss:>12} "
      f"{statistics.median(ratios):9.1f}x  {', '.join(f'{x:.1f}x' for x in ratios)}")
PY
done
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

#!/usr/bin/env bash
# Side-by-side timing of `tess run` / `tess plan` against act (self-hosted mode) and
# gitlab-ci-local (shell mode) on the workloads of benches/workloads.py, with this
# checkout's release build, plus `raw-sh`: the same number of process spawns from a plain
# shell loop (the floor nothing can beat).
#   benches/compare.sh [RUNS]          (peers: scripts/install-peers.sh; ONLY="tess act" to pick)
# Rows: workload tool median_wall_s peak_rss_kb (hyperfine medians, GNU time's peak RSS).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
only=${ONLY:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
tess="${CARGO_TARGET_DIR:-$here/target}/release/tess"
python3 "$here/benches/workloads.py" "$work"
line=$(python3 -c 'print("0123456789" * 9 + "012345678")')

median() {
  hyperfine -N -i --warmup 1 --runs "$runs" --export-json "$work/hf.json" "$1" >/dev/null 2>&1 || { echo fail; return; }
  python3 -c 'import json,sys;print("%.4f" % json.load(open(sys.argv[1]))["results"][0]["median"])' "$work/hf.json"
}
peak_rss() { /usr/bin/time -f %M sh -c "$1 >/dev/null 2>&1" 2>&1 | tail -1; }
row() { echo "$1 $2 $(median "$3") $(peak_rss "$3")"; }
wanted() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }
have() { wanted "$1" && command -v "$1" >/dev/null; }

echo "workload tool median_wall_s peak_rss_kb"
for w in fanout chain steps log100m; do
  cd "$work/$w"
  have act && row "$w" act "act -P ubuntu-latest=-self-hosted push"
  have gitlab-ci-local && row "$w" gitlab-ci-local "gitlab-ci-local"
  if wanted tess; then
    row "$w" tess-github "$tess run .github/workflows/bench.yml"
    row "$w" tess-gitlab "$tess run .gitlab-ci.yml"
  fi
done
cd "$work/plan1000"
have act && row plan1000 act "act -l"
have gitlab-ci-local && row plan1000 gitlab-ci-local "gitlab-ci-local --list-json"
if wanted tess; then
  row plan1000 tess-github "$tess plan --json .github/workflows/bench.yml"
  row plan1000 tess-gitlab "$tess plan --json .gitlab-ci.yml"
fi
row fanout raw-sh "sh -c 'for i in \$(seq 160); do sh -c /bin/true; done'"
row chain raw-sh "sh -c 'for i in \$(seq 16); do sh -c /bin/true; done'"
row steps raw-sh "sh -c 'for i in \$(seq 300); do sh -c /bin/true; done'"
row log100m raw-sh "awk 'BEGIN{for(i=0;i<1000000;i++)print \"$line\"}'"
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

#!/usr/bin/env bash
# Real marketplace actions, side by side with act (self-hosted mode: -P ubuntu-latest=-self-hosted),
# the same action trees given to both (tess --local-action, act --local-repository; act with
# --action-offline-mode), warm caches:
#   benches/actions.sh [RUNS]
# Rows (hyperfine medians):
#   script-10   a job of 10 actions/github-script@v8.0.0 steps
#   node-cache  actions/setup-node@v7.0.0 (this host's node, pre-seeded in each tool's tool cache) +
#               actions/cache@v4 (a hit after the warm-up; tess with --no-builtin-actions, so
#               the real action and tess's cache service run)
#   resolve     tess resolving an action already in its cache (fetched once from a local
#               `git daemon`): the median of its `action resolved` debug events, in ms
# Needs ../shared/actions (or $TESS_SHARED/actions) and the peers (scripts/install-peers.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
shared=${TESS_SHARED:-$here/../shared}
command -v act >/dev/null || "$here/scripts/install-peers.sh" >/dev/null
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
tess="${CARGO_TARGET_DIR:-$here/target}/release/tess"
work=$(mktemp -d)
daemon=
seeded_act=
trap 'rm -rf "$work" $seeded_act; [ -z "$daemon" ] || kill "$daemon" 2>/dev/null || true' EXIT

mkdir -p "$work/actions"
for a in github-script@v8.0.0 setup-node@v7.0.0 cache@v4; do
  mkdir -p "$work/actions/$a"
  tar -xzf "$shared/actions/actions__$a.tar.gz" -C "$work/actions/$a" --strip-components=1
done
local_actions() { # FLAG
  for a in github-script@v8.0.0 setup-node@v7.0.0 cache@v4; do
    printf ' %s actions/%s=%s' "$1" "$a" "$work/actions/$a"
  done
}
node_version=$(node --version | tr -d v)
seed_node() { # TOOL_CACHE
  mkdir -p "$1/node/$node_version/x64/bin"
  ln -sfn "$(command -v node)" "$1/node/$node_version/x64/bin/node"
  touch "$1/node/$node_version/x64.complete"
}
export RUNNER_TOOL_CACHE=$work/toolcache
seed_node "$RUNNER_TOOL_CACHE"
# act points RUNNER_TOOL_CACHE at its own directory in self-hosted mode.
act_tool_cache=${XDG_CACHE_HOME:-$HOME/.cache}/act/tool_cache
[ -e "$act_tool_cache/node/$node_version" ] || seeded_act=$act_tool_cache/node/$node_version
seed_node "$act_tool_cache"

project() { # DIR WORKFLOW
  mkdir -p "$1/.github/workflows"
  printf '%s' "$2" > "$1/.github/workflows/ci.yml"
  git -C "$1" init -q -b main
  git -C "$1" add -A && git -C "$1" -c user.name=b -c user.email=b@b commit -qm bench
}
script_steps=$(for i in $(seq 10); do printf '      - uses: actions/github-script@v8.0.0\n        with:\n          script: core.info("step %s")\n' "$i"; done)
project "$work/script-10" "on: push
jobs:
  job:
    runs-on: ubuntu-latest
    steps:
$script_steps
"
project "$work/node-cache" "on: push
jobs:
  job:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/setup-node@v7.0.0
        with:
          node-version: '$node_version'
      - uses: actions/cache@v4
        with:
          path: deps
          key: deps-bench
      - run: mkdir -p deps && node --version > deps/v
"

median() { # DIR COMMAND → median seconds
  hyperfine --warmup 1 --runs "$runs" --export-json "$work/hf.json" "cd $1 && $2" >/dev/null 2>&1
  python3 -c 'import json;print(json.load(open("'"$work"'/hf.json"))["results"][0]["median"])'
}
row() { printf '%-11s %-6s %10.3f\n' "$1" "$2" "$3"; }
printf '%-11s %-6s %10s\n' workload tool median_s
act_cmd="act -P ubuntu-latest=-self-hosted --action-offline-mode -s GITHUB_TOKEN=bench-token$(local_actions --local-repository) -W .github/workflows/ci.yml >/dev/null 2>&1"
tess_cmd="$tess run$(local_actions --local-action) >/dev/null 2>&1"
for w in script-10 node-cache; do
  extra=
  [ "$w" = node-cache ] && extra=" --no-builtin-actions"
  # A failing command would make hyperfine's numbers meaningless: each must pass once.
  (cd "$work/$w" && eval "${tess_cmd/ run/ run$extra}") || { echo "tess failed on $w" >&2; exit 1; }
  (cd "$work/$w" && eval "$act_cmd") || { echo "act failed on $w" >&2; exit 1; }
  row "$w" tess "$(median "$work/$w" "${tess_cmd/ run/ run$extra}")"
  row "$w" act "$(median "$work/$w" "$act_cmd")"
done

# resolve: from the actions cache, after one fetch over git:// from a local git daemon.
mkdir -p "$work/git/actions"
git init -q --bare "$work/git/actions/github-script"
(cd "$work/actions/github-script@v8.0.0" && git init -q -b main && git add -A \
  && git -c user.name=b -c user.email=b@b commit -qm v8 && git tag v8.0.0 \
  && git push -q "$work/git/actions/github-script" HEAD:refs/heads/main refs/tags/v8.0.0)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
git daemon --base-path="$work/git" --export-all --reuseaddr --listen=127.0.0.1 --port="$port" "$work/git" &
daemon=$!
for _ in $(seq 100); do git ls-remote "git://127.0.0.1:$port/actions/github-script" >/dev/null 2>&1 && break; sleep 0.05; done
export TESS_ACTIONS_CACHE=$work/actions-cache
cd "$work/script-10"
"$tess" run --actions-server "git://127.0.0.1:$port" >/dev/null 2>&1
: > "$work/resolve.log"
for _ in $(seq "$runs"); do
  TESS_LOG=tesseract_ci=debug "$tess" run --offline --actions-server "git://127.0.0.1:$port" 2>>"$work/resolve.log" >/dev/null
done
python3 - "$work/resolve.log" <<'EOF'
import re, statistics, sys
micros = [int(m) for m in re.findall(r'action resolved.*?micros=(\d+)', open(sys.argv[1]).read())]
if not micros:
    sys.exit("no `action resolved` events were logged")
print(f"{'resolve':<11} {'tess':<6} {statistics.median(micros) / 1000:10.3f}  (ms, median of {len(micros)})")
EOF
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); node $(node --version); act $(act --version | awk '{print $3}')"

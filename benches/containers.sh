#!/usr/bin/env bash
# Container job overhead, side by side with the peers, on the same image (debian:bookworm
# from scripts/images.sh) and the same Docker API (podman's, from scripts/podman.sh):
#   benches/containers.sh [RUNS]
# Rows (hyperfine medians):
#   github-10   a 10-step GitHub job in `container: debian:bookworm`: tess vs act (docker
#               mode, -P ubuntu-latest=debian:bookworm --pull=false)
#   gitlab-10   a GitLab job with `image: debian:bookworm` and 10 script lines: tess vs
#               gitlab-ci-local (docker executor; its helper image set to debian:bookworm,
#               Docker Hub's is not reachable here)
#   per-step    tess's cost of one more step in a running container ((21-step job - 1-step
#               job) / 20) vs `docker exec CONTAINER true` on the same API
# Needs a docker CLI for gitlab-ci-local and the exec baseline (podman-docker gives one).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
export DOCKER_HOST=${DOCKER_HOST:-$("$here/scripts/podman.sh")}
"$here/scripts/images.sh" 2>/dev/null
command -v docker >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman-docker >&2
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
tess="${CARGO_TARGET_DIR:-$here/target}/release/tess"
work=$(mktemp -d)
trap 'rm -rf "$work"; docker rm -f -t 0 tess-bench-exec >/dev/null 2>&1 || true' EXIT

project() { # DIR
  mkdir -p "$1/.github/workflows"
  git -C "$1" init -q -b main
}
steps() { # N
  for i in $(seq "$1"); do echo "      - run: echo step $i"; done
}
for n in 1 10 21; do
  d=$work/github-$n
  project "$d"
  { printf 'on: push\njobs:\n  job:\n    runs-on: ubuntu-latest\n    container: debian:bookworm\n    steps:\n'; steps "$n"; } > "$d/.github/workflows/ci.yml"
  git -C "$d" add -A && git -C "$d" -c user.name=b -c user.email=b@b commit -qm bench
done
d=$work/gitlab-10
project "$d"
{ printf 'job:\n  image: debian:bookworm\n  script:\n'; for i in $(seq 10); do echo "    - echo step $i"; done; } > "$d/.gitlab-ci.yml"
git -C "$d" add -A && git -C "$d" -c user.name=b -c user.email=b@b commit -qm bench

median() { # NAME DIR COMMAND → median seconds
  hyperfine --warmup 1 --runs "$runs" --export-json "$work/hf.json" "cd $2 && $3" >/dev/null 2>&1
  python3 -c 'import json;print(json.load(open("'"$work"'/hf.json"))["results"][0]["median"])'
}
row() { printf '%-10s %-16s %10.3f\n' "$1" "$2" "$3"; }
printf '%-10s %-16s %10s\n' workload tool median_s
t=$(median tess "$work/github-10" "$tess run --executor container >/dev/null")
row github-10 tess "$t"
a=$(median act "$work/github-10" "act -P ubuntu-latest=debian:bookworm --pull=false -W .github/workflows/ci.yml >/dev/null 2>&1")
row github-10 act "$a"
t=$(median tess "$work/gitlab-10" "$tess run --executor container .gitlab-ci.yml >/dev/null")
row gitlab-10 tess "$t"
g=$(median gcl "$work/gitlab-10" "gitlab-ci-local --helper-image docker.io/library/debian:bookworm --pull-policy if-not-present job >/dev/null 2>&1")
row gitlab-10 gitlab-ci-local "$g"
one=$(median tess "$work/github-1" "$tess run --executor container >/dev/null")
many=$(median tess "$work/github-21" "$tess run --executor container >/dev/null")
row per-step tess "$(python3 -c "print(($many - $one) / 20)")"
docker run -d --name tess-bench-exec debian:bookworm tail -f /dev/null >/dev/null
e=$(median exec "$work" "docker exec tess-bench-exec true")
row per-step "docker exec" "$e"
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); engine: podman $(podman --version | awk '{print $3}') API"

#!/usr/bin/env bash
# Records `gitlab-ci-local --list-json` for every corpus file it can list offline, as the
# reference for the agreement test (tests/it/gitlab.rs). Each project is laid out with its
# local includes, committed on `main`, with an `origin` remote of gitlab.com/acme/proj (what
# gitlab-ci-local needs to start). Files it cannot list are left out and named on stderr.
#   scripts/record-gitlab-ci-local.sh      (gitlab-ci-local: scripts/install-peers.sh;
#                                           the corpus: $TESS_CORPUS or ../shared/corpus)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${TESS_CORPUS:-$here/../shared/corpus}/gitlab
[ -d "$corpus" ] || { echo "no corpus at $corpus (set TESS_CORPUS)" >&2; exit 1; }
out=$here/tests/fixtures/gitlab-ci-local
mkdir -p "$out"
echo "gitlab-ci-local $(gitlab-ci-local --version)" > "$out/VERSION"
for main in "$corpus"/*.gitlab-ci.yml; do
  name=$(basename "$main" .gitlab-ci.yml)
  work=$(mktemp -d)
  cp "$main" "$work/.gitlab-ci.yml"
  for inc in "$corpus"/includes/"$name"*; do
    [ -e "$inc" ] || continue
    rel=$(basename "$inc"); rel=${rel#"$name"}; rel=${rel//__//}
    mkdir -p "$work/$(dirname "$rel")"; cp "$inc" "$work/$rel"
  done
  (cd "$work" && git init -q -b main && git add -A \
    && git -c user.email=t@t -c user.name=t commit -qm corpus \
    && git remote add origin https://gitlab.com/acme/proj.git \
    && git update-ref refs/remotes/origin/main HEAD \
    && git symbolic-ref refs/remotes/origin/HEAD refs/remotes/origin/main)
  if (cd "$work" && timeout 120 gitlab-ci-local --list-json > "$out/$name.json" 2>/dev/null); then
    echo "recorded $name"
  else
    echo "gitlab-ci-local cannot list $name offline" >&2
    rm -f "$out/$name.json"
  fi
  rm -rf "$work"
done

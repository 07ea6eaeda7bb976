#!/usr/bin/env bash
# The GitHub Action's install step: puts `tess` in the tool cache and names it in the step's
# `tess` output. An explicit version (a release tag) comes from the tool cache or a release
# download. Otherwise the action's own source is the version (keyed by its content hash):
# from the tool cache, else the release binary of the action's ref when it is an exact
# release (`uses: …@v1.2.3`), else built with cargo. (The tool cache is kept between jobs on
# self-hosted runners; on hosted ones, cache `${{ runner.tool_cache }}/tesseract-ci` with
# actions/cache.)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
arch="$(uname -m)"
version="${TESS_VERSION:-}"
if [ -z "$version" ]; then
  version="src-$(cd "$here" && cat Cargo.toml Cargo.lock $(find src -type f | LC_ALL=C sort) | sha256sum | cut -c1-16)"
fi
cache="${RUNNER_TOOL_CACHE:-$HOME/.cache}/tesseract-ci/$version/$os-$arch"
bin="$cache/tess"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "tess $version from the tool cache: $bin"
else
  mkdir -p "$cache"
  releases="${TESS_RELEASE_URL:-https://github.com/tesseract-ci/tesseract-ci/releases/download}"
  url="$releases/$version/tess-$os-$arch.tar.gz"
  action_ref="${TESS_ACTION_REF:-}"
  if [[ "$version" == src-* && "$action_ref" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] \
    && curl -fsSL --retry 2 --connect-timeout 10 "$releases/$action_ref/tess-$os-$arch.tar.gz" | tar -xz -C "$cache" tess; then
    echo "tess $action_ref downloaded (the action's release)"
  elif [[ "$version" != src-* ]]; then
    curl -fsSL --retry 2 --connect-timeout 10 "$url" | tar -xz -C "$cache" tess || {
      echo "::error title=tesseract-ci::tess $version: no release binary for $os-$arch at $url"
      exit 1
    }
    echo "tess $version downloaded from $url"
  elif [ -f "$here/Cargo.toml" ]; then
    command -v cargo >/dev/null || { echo "::error title=tesseract-ci::no cargo to build tess from source: install a Rust toolchain first, or pass a release version"; exit 1; }
    echo "::group::Building tess $version from source with cargo"
    # The target directory stays in the tool cache: the next build is incremental.
    CARGO_TARGET_DIR="${RUNNER_TOOL_CACHE:-$HOME/.cache}/tesseract-ci/target" \
      cargo build --release --locked --manifest-path "$here/Cargo.toml"
    cp "${RUNNER_TOOL_CACHE:-$HOME/.cache}/tesseract-ci/target/release/tess" "$bin.tmp"
    mv "$bin.tmp" "$bin"
    echo "::endgroup::"
  else
    echo "::error title=tesseract-ci::no Cargo.toml at $here to build tess from"
    exit 1
  fi
fi
echo "tess=$bin" >> "$GITHUB_OUTPUT"

#!/usr/bin/env bash
# Installs mdBook (pinned) into ~/.cargo/bin when it is missing, built from crates.io
# without its `serve`/`watch` features (CI only builds the book).
set -euo pipefail
version=0.4.52
if command -v mdbook >/dev/null && mdbook --version | grep -q "v$version"; then
  exit 0
fi
cargo install --quiet --locked --version "$version" --no-default-features --features search mdbook

#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver when missing (the web UI's browser tests) and
# prints the chromedriver path.
set -euo pipefail
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null
fi
command -v chromedriver

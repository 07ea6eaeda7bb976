#!/usr/bin/env bash
# The GitHub Action's run step: the inputs (as TESS_* variables) become `tess run` arguments.
set -euo pipefail
args=(run --github-actions --report "${TESS_REPORT:-statuses}")
[ -n "${TESS_EVENT:-}" ] && args+=(--event "$TESS_EVENT")
[ -n "${TESS_REF:-}" ] && args+=(--ref "$TESS_REF")
[ -n "${TESS_PARALLELISM:-}" ] && args+=(--jobs-parallel "$TESS_PARALLELISM")
for job in ${TESS_JOBS//,/ }; do args+=(--job "$job"); done
[ -n "${TESS_PIPELINE:-}" ] && args+=("$TESS_PIPELINE")
exec "$TESS_BIN" "${args[@]}"

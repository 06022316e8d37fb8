#!/usr/bin/env bash
# CI preflight: run envdoctor check before the real job, keep the JSON report as an
# artifact, print annotations, and fail the job on errors.
#
#   bash checks/ci_preflight.sh [REPORT_DIR] [extra envdoctor check options...]
#
# Exit status is envdoctor's: 0 clean, 1 errors found, 2 usage, 3 envdoctor failed.
set -uo pipefail
out_dir="${1:-envdoctor-report}"
shift || true
mkdir -p "$out_dir"

envdoctor check --format json --fail-on never -o "$out_dir/envdoctor.json" "$@" || exit $?
envdoctor check --format markdown --fail-on never -o "$out_dir/envdoctor.md" --from "$out_dir/envdoctor.json"
if [ -n "${GITHUB_ACTIONS:-}" ]; then
  fmt=github
else
  fmt=text
fi
# Re-diagnose the saved facts (no second probe run) for the exit status and the annotations.
envdoctor check --from "$out_dir/envdoctor.json" --format "$fmt" --fail-on error
status=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$out_dir/envdoctor.md" >> "$GITHUB_STEP_SUMMARY"
fi
exit $status

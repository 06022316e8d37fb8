#!/usr/bin/env bash
# CI preflight: run envdoctor check once before the real job (against the project's
# [tool.envdoctor.require] table when there is one), keep JSON, Markdown and JUnit reports
# as artifacts, print annotations (GitHub Actions: within GitHub's limits, plus a job
# summary), and fail the job on errors.
#
#   bash checks/ci_preflight.sh [REPORT_DIR] [extra envdoctor check options, e.g. --require ci.toml]
#
# Exit status is envdoctor's: 0 clean, 1 errors found, 2 usage error (e.g. an invalid
# requirement table), 3 envdoctor failed.
set -uo pipefail
out_dir="${1:-envdoctor-report}"
shift || true
mkdir -p "$out_dir"

# Probe once; the JSON report carries the facts, the requirements and the import results.
envdoctor check --format json --fail-on never --no-step-summary -o "$out_dir/envdoctor.json" "$@"
status=$?
if [ "$status" -eq 2 ] || [ ! -f "$out_dir/envdoctor.json" ]; then
  exit "$status"
fi
for fmt_ext in markdown:md junit:xml; do
  envdoctor check --from "$out_dir/envdoctor.json" --format "${fmt_ext%%:*}" --fail-on never --no-step-summary \
    -o "$out_dir/envdoctor.${fmt_ext##*:}"
done
if [ "${GITHUB_ACTIONS:-}" = "true" ]; then
  fmt=github  # annotations, and the job summary appended to $GITHUB_STEP_SUMMARY
else
  fmt=text
fi
# Re-diagnose the saved facts (no second probe run) for the exit status and the annotations.
envdoctor check --from "$out_dir/envdoctor.json" --format "$fmt" --fail-on error

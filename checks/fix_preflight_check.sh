#!/usr/bin/env bash
# Acceptance check for `envdoctor fix` on this machine, outside pytest:
#   1. with HOME a temp dir and CUDA_HOME unset, `fix --write-bashrc --yes` writes a block
#      that sets CUDA_HOME to a CUDA toolkit;
#   2. a new interactive bash that reads ~/.bashrc builds the CUDA variant of the op;
#   3. a second run leaves the file byte-identical;
#   4. `fix --undo` restores the original file exactly.
# Usage: checks/fix_preflight_check.sh [ARCH]   (default ARCH 8.0; no GPU needed)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
arch="${1:-8.0}"
home="$(mktemp -d)"
trap 'rm -rf -- "$home"' EXIT
export HOME="$home" PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
unset CUDA_HOME CUDA_PATH XDG_CACHE_HOME
printf '# existing bashrc\ncase $- in *i*) ;; *) return;; esac\nalias ll="ls -l"' > "$home/.bashrc"
cp -- "$home/.bashrc" "$home/original"

python -m envdoctor fix --write-bashrc --yes --no-smoke --no-rebuild || true   # exit 1 = still unhealthy (no GPU)
grep -q '^export CUDA_HOME=' "$home/.bashrc" || { echo "FAIL: no CUDA_HOME in the block"; exit 1; }
echo "block: $(grep '^export CUDA_HOME=' "$home/.bashrc")"

result="$(cd "$repo" && bash -ic 'exec python -m envdoctor build --format json --arch "$1"' bash "$arch" 2>/dev/null </dev/null)"
python - "$result" <<'EOF'
import json, sys
data = json.loads(sys.argv[1])
build = data.get("build", data)
assert build["ok"] and build["variant"] == "cuda", build
print(f"op build in a new shell: ok ({build['variant']}, {build.get('seconds')}s)")
EOF

cp -- "$home/.bashrc" "$home/after-first"
python -m envdoctor fix --write-bashrc --yes --no-smoke --no-rebuild >/dev/null || true
cmp -s "$home/.bashrc" "$home/after-first" || { echo "FAIL: the second run changed the file"; exit 1; }
echo "second run: unchanged"

python -m envdoctor fix --undo
cmp -s "$home/.bashrc" "$home/original" || { echo "FAIL: undo did not restore the original"; exit 1; }
echo "undo: original restored byte for byte"
echo "PASS"

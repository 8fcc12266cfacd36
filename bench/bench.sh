#!/usr/bin/env bash
# Make the bench's two venvs (only when missing or their pins changed), then
# run the benchmark. Arguments go to bench/run.py:
#   bench/bench.sh            full run, report in bench/results/
#   bench/bench.sh --smoke    under a minute, for CI
# The Rust consumer is not built here: build it first (`cargo build --release
# -p consumer`) or point BENCH_RUST_BOOTSTRAP at it; without it the report
# says so and measures the Python peers only.
# BENCH_PYTHON picks the interpreter the venvs are made from (default python3).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${BENCH_PYTHON:-python3}"

ensure_venv() {
  local dir="$1" requirements="$2" stamp want
  stamp="$dir/.bench-stamp"
  want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "bench: creating $dir from $requirements" >&2
  rm -rf -- "$dir"
  "$PYTHON" -m venv "$dir"
  timeout 900 "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input -r "$requirements"
  echo "$want" > "$stamp"
}

ensure_venv "$BENCH_DIR/.venv" "$BENCH_DIR/requirements.txt"
ensure_venv "$BENCH_DIR/python/.venv" "$BENCH_DIR/python/requirements.txt"

exec "$BENCH_DIR/.venv/bin/python" "$BENCH_DIR/run.py" "$@"

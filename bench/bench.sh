#!/usr/bin/env bash
# Make the bench's two venvs (only when missing or their pins changed), then
# run the benchmark. Arguments go to bench/run.py:
#   bench/bench.sh            full run, report in bench/results/
#   bench/bench.sh --smoke    under a minute, for CI
# The Rust consumer is not built here: build it first (`cargo build --release
# -p consumer`) or point BENCH_RUST_BOOTSTRAP at it; without it the report
# says so and measures the Python peers only.
# BENCH_PYTHON picks the interpreter the venvs are made from (default python3).
# Two venvs, not one: the peers' (python/.venv) mirrors what a Lambda function
# would ship, boto3 1.44 among it, while the harness's runs the emulator,
# whose ministack pins botocore < 1.44.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../infra/tools.sh
source "$BENCH_DIR/../infra/tools.sh"
PYTHON="${BENCH_PYTHON:-python3}"

make_venv "$BENCH_DIR/.venv" "$BENCH_DIR/requirements.txt"
make_venv "$BENCH_DIR/python/.venv" "$BENCH_DIR/python/requirements.txt"

exec "$BENCH_DIR/.venv/bin/python" "$BENCH_DIR/run.py" "$@"

#!/usr/bin/env bash
# Sync the bench's two Python environments (only when missing or uv.lock
# changed), then run the benchmark. Arguments go to bench/run.py:
#   bench/bench.sh            full run, report in bench/results/
#   bench/bench.sh --smoke    under a minute, for CI
# The Rust consumer is not built here: build it first (`cargo build --release
# -p consumer`) or point BENCH_RUST_BOOTSTRAP at it; without it the report
# says so and measures the Python peers only.
# BENCH_PYTHON picks the interpreter they are made from (default python3).
# Two environments, not one: the peers' (python/.venv, group peers) mirrors
# what a Lambda function would ship (boto3, aiobotocore and the botocore
# aiobotocore pins), while the harness runs in the local stack's .venv
# (group emulator), whose awscli pins another botocore.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../infra/tools.sh
source "$BENCH_DIR/../infra/tools.sh"
PYTHON="${BENCH_PYTHON:-python3}"

ensure_venv local
ensure_venv peers
# The Node peer's packages (bench/node/install.sh: npm ci when its lockfile
# changed). Without them the bench skips that peer and says why, unless
# BENCH_REQUIRE_NODE=1 (CI), which makes a failed install fatal.
bash "$BENCH_DIR/node/install.sh" || [[ "${BENCH_REQUIRE_NODE:-0}" != 1 ]] || die "the Node peer could not be installed"

# The latency proxy between the functions and the emulator is tools/'s
# fault-proxy (Rust): built here, quietly and incrementally, in the local
# profile, unless BENCH_PROXY_BIN already points at one.
if [[ -z "${BENCH_PROXY_BIN:-}" ]]; then
  (cd "$REPO" && cargo build --quiet --profile local -p tools --bin fault-proxy) \
    || die "could not build the latency proxy (cargo build --profile local -p tools --bin fault-proxy)"
  BENCH_PROXY_BIN="$(cargo_target_dir)/local/fault-proxy"
fi
export BENCH_PROXY_BIN

exec "$(venv_dir local)/bin/python" "$BENCH_DIR/run.py" "$@"

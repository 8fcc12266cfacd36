#!/usr/bin/env bash
# The project's whole test run (`make test`, and CI through .ci/run):
# formatting, lints, unit tests and the end-to-end tests against the local
# emulator, which it starts itself (and stops again if it started it).
#   Env: TEST_FILTER (a nextest filter expression, e.g. 'package(consumer)'),
#        SKIP_E2E=1 (unit tests only; no emulator needed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../infra/local/lib.sh"
cd "$REPO"

step() { printf '\n\033[1;32m### %s\033[0m\n' "$*" >&2; }

step "toolchain (.venv: emulator, aws cli, k6)"
bash infra/local/venv.sh

step "cargo fmt --check"
cargo fmt --all --check || die "formatting differs; run: cargo fmt --all"
cargo fmt --manifest-path fuzz/Cargo.toml --check || die "formatting differs in fuzz/; run: cargo fmt --manifest-path fuzz/Cargo.toml"

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc -D warnings: the engine crate and the contract"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked -p lambda-batch -p pipeline-core

if [[ "${SKIP_E2E:-0}" == 1 ]]; then
  step "unit tests (SKIP_E2E=1)"
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --exclude tests --no-tests=warn
  else
    cargo test --workspace --locked --exclude tests
  fi
  exit 0
fi

step "local-profile build and Lambda zips"
CARGO_BUILD_FLAGS="--locked" bash infra/local/build.sh

step "infra checks: cfn-lint, sam validate, checkov, least privilege, cargo deny, glibc"
bash infra/check.sh

step "fuzz smoke: every cargo-fuzz target for a few seconds"
fuzz/run.sh "${FUZZ_SECONDS:-5}"

step "bench smoke: Rust and Python consumers through the Runtime API harness"
# The smoke checks that the harness and every peer still work; it runs the
# local-profile binary just built (its figures are printed, not judged;
# `make bench` measures the release build).
export BENCH_RUST_BOOTSTRAP="${BENCH_RUST_BOOTSTRAP:-$(cargo_target_dir)/local/consumer}"
# The latency proxy (tools/'s fault-proxy), built as the consumer was: local
# profile, --locked (bench.sh would build it too, without --locked).
if [[ -z "${BENCH_PROXY_BIN:-}" ]]; then
  cargo build --locked --quiet --profile local -p tools --bin fault-proxy
  export BENCH_PROXY_BIN="$(cargo_target_dir)/local/fault-proxy"
fi
# The smoke runs every function under a CPU quota (512 MB) too; as root the
# quota must be set (a cgroup cpu controller is there), elsewhere the run
# says it skipped it.
quota_flag=""; [ "$(id -u)" -eq 0 ] && quota_flag="--require-quota"
# BENCH_REQUIRE_NODE=1: CI installed the Node peer's build tools (.ci/run),
# so a failed install of bench/node fails the run instead of skipping it.
(cd bench && BENCH_REQUIRE_NODE=1 bash bench.sh --smoke --require-rust ${quota_flag:+"$quota_flag"})
(cd bench && ../.venv/bin/python -m unittest -q tests/test_harness.py && python/.venv/bin/python -m unittest -q tests/test_peers.py)
(cd bench/node && node --test --test-reporter=dot)

step "emulator"
started_here=0
if ! emulator_healthy; then
  bash infra/local/emulator.sh start
  started_here=1
fi
cleanup() {
  if [[ "$started_here" == 1 ]]; then
    bash infra/local/emulator.sh stop || true
  fi
}
trap cleanup EXIT

step "load smoke: the ramp's unit tests, then a 3-step k6 ramp, e2e and the emulator's ceiling against a stack of its own"
.venv/bin/python k6/test_ramp.py -q
STACK_NAME=test-load k6/load.sh --smoke

step "soak smoke: poison messages and failing backend calls, then the audit"
k6/soak.sh --smoke

step "FIFO soak smoke: groups of more than 10 messages under the same faults, then the audit of their order"
QUEUE_TYPE=fifo k6/soak.sh --smoke

step "unit and end-to-end tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast ${TEST_FILTER:+-E "$TEST_FILTER"}
else
  cargo test --workspace --locked --no-fail-fast
fi

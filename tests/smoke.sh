#!/usr/bin/env bash
# `make smoke`: what keeps the project's tooling from rotting, beside the
# product's tests (`make test`, tests/run.sh); CI (.ci/run) runs both. A
# short run of each: the slower infra scanners (sam validate, checkov,
# cargo deny), the fuzz targets, the bench with its Node and Python peers,
# a load ramp and a soak with faults. Figures they print are not judged.
#   Env: FUZZ_SECONDS (per fuzz target, default 5).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../infra/local/lib.sh"
cd "$REPO"

step "toolchain (.venv: emulator, aws cli, k6)"
bash infra/local/venv.sh

# The binaries the smokes run, all from make test's one dev build of the
# workspace (after make test this is a no-op): the Lambdas, the fault proxy
# and the ceiling. The smokes check that the tools work, and their figures
# are not judged (`make bench` and `make load` build optimised ones). Any
# other build (`-p tools` alone, or the local profile) would compile the AWS
# SDK once more, since cargo unifies features per invocation: 7 min 50 s of
# a cold CI run on the 2-vCPU VM (2026-12-02).
step "build: the dev-profile Lambda zips and tools of make test"
CARGO_PROFILE=dev CARGO_BUILD_FLAGS="--locked --workspace --all-targets" bash infra/local/build.sh
debug_dir="$(cargo_target_dir)/debug"
export FAULT_PROXY_BIN="$debug_dir/fault-proxy" CEILING_BIN="$debug_dir/ceiling"

# Every check of `make check-infra`: the cheap ones make test runs too
# (uv.lock, cfn-lint, least privilege), and sam validate, checkov and cargo
# deny (whose first run installs it: minutes).
step "infra checks: all of make check-infra"
bash infra/check.sh

step "fuzz smoke: every cargo-fuzz target for a few seconds"
fuzz/run.sh "${FUZZ_SECONDS:-5}"

step "bench smoke: Rust, Python and Node consumers through the Runtime API harness"
export BENCH_RUST_BOOTSTRAP="${BENCH_RUST_BOOTSTRAP:-$debug_dir/consumer}"
export BENCH_PROXY_BIN="${BENCH_PROXY_BIN:-$FAULT_PROXY_BIN}"
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
emulator_while_running

step "load smoke: the ramp's unit tests, then a 3-step k6 ramp, e2e and the emulator's ceiling against a stack of its own"
.venv/bin/python k6/test_ramp.py -q
# SKIP_BUILD=1: when the stack is missing, load.sh's up.sh deploys the zips
# built above instead of building the local profile.
SKIP_BUILD=1 STACK_NAME=test-load k6/load.sh --smoke

step "soak smoke: poison messages and failing backend calls, then the audit"
k6/soak.sh --smoke

step "FIFO soak smoke: groups of more than 10 messages under the same faults, then the audit of their order"
QUEUE_TYPE=fifo k6/soak.sh --smoke

step "done"

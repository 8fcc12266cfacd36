#!/usr/bin/env bash
# `make test`: everything that tests the product, locally and in CI (.ci/run
# runs it, then tests/smoke.sh): formatting, lints, docs, unit and doc tests,
# the offline template and IAM checks, and the end-to-end tests against the
# local emulator, which it starts itself (and stops again if it started it).
# The bench, load, soak and fuzz smokes and the slower scanners are `make
# smoke` (tests/smoke.sh).
#   Env: TEST_FILTER (a nextest filter expression, e.g. 'package(consumer)'),
#        SKIP_E2E=1 (no emulator: unit and doc tests only, `make unit`),
#        TEST_THREADS (tests at once, default 4: the end-to-end tests spend
#        most of their time waiting on queues, not on the CPU; 8 on a busy
#        2-core machine starved a test that times an answer against its
#        Lambda timeout).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../infra/local/lib.sh"
cd "$REPO"

step "toolchain (.venv: emulator, aws cli)"
bash infra/local/venv.sh

step "cargo fmt --check"
cargo fmt --all --check || die "formatting differs; run: cargo fmt --all"
cargo fmt --manifest-path fuzz/Cargo.toml --check || die "formatting differs in fuzz/; run: cargo fmt --manifest-path fuzz/Cargo.toml"

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc -D warnings: the engine crate and the contract"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked -p lambda-batch -p pipeline-core

# ---- the engine crate's own checks (lambda-batch/ci.sh) ------------------
# The publishable engine crate checks what only a library needs (cargo
# package, its rust-version, a build outside this workspace, ...). Its script
# owns those steps; they run here, after the tests.
crate_checks() {
  if [[ -f lambda-batch/ci.sh ]]; then
    step "lambda-batch crate checks (lambda-batch/ci.sh)"
    bash lambda-batch/ci.sh
  fi
}
# ---------------------------------------------------------------------------

# Unit and end-to-end tests with nextest, then the doc tests (nextest does
# not run those); plain `cargo test` runs both where nextest is missing.
run_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
    step "doc tests"
    # lambda-batch/ci.sh runs the engine crate's own (crate_checks, below).
    local own=(); [[ -f lambda-batch/ci.sh ]] && own=(--exclude lambda-batch)
    cargo test --workspace --locked --doc "${own[@]}"
  else
    cargo test --workspace --locked --no-fail-fast
  fi
}

if [[ "${SKIP_E2E:-0}" == 1 ]]; then
  step "unit tests (SKIP_E2E=1)"
  run_tests --exclude tests --no-tests=warn
  crate_checks
  exit 0
fi

# One build for the tests and the Lambdas the end-to-end tests deploy: the
# dev profile with every target of the workspace is the build nextest runs,
# so the AWS SDK is compiled once here (the `local` profile of `make up`
# would compile it a second time, optimised). The tests check behaviour, not
# speed; `make smoke`, `make load` and `make bench` use optimised builds.
step "build: tests and the Lambda zips (dev profile)"
CARGO_PROFILE=dev CARGO_BUILD_FLAGS="--locked --workspace --all-targets" bash infra/local/build.sh

# The template's validity and its IAM are the product's; the slower scanners
# (sam validate, checkov, cargo deny) are in `make smoke` and `make check-infra`.
step "infra checks: uv.lock, cfn-lint, least privilege"
bash infra/check.sh uv-lock cfn-lint least-privilege

step "emulator"
emulator_while_running

step "unit and end-to-end tests"
# REQUIRE_EMULATOR=1: an end-to-end test that finds no emulator fails here
# instead of skipping, as it does under a bare `cargo test`.
export REQUIRE_EMULATOR=1
run_tests --test-threads "${TEST_THREADS:-4}" ${TEST_FILTER:+-E "$TEST_FILTER"}
crate_checks
step "done"

# The few commands a person types. Local stack scripts live in infra/local/.
SHELL := bash

.DEFAULT_GOAL := help
.PHONY: semver help up down status test smoke unit fmt lint audit check-infra package deploy bench bench-quick fuzz load soak

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

# ---- local stack (ministack emulator; see infra/local/NOTES.md) -------------

up: ## Build, start the emulator, deploy the stack and send one message through it
	infra/local/up.sh

down: ## Stop the emulator and every Lambda process it started
	infra/local/down.sh

status: ## Show the emulator, the stack and the queue depths
	@infra/local/status.sh

# ---- Rust workspace ---------------------------------------------------------

test: ## Everything that tests the product: fmt, clippy, unit, doc and end-to-end tests (starts the emulator itself)
	tests/run.sh

smoke: ## A short run of the tooling: infra scanners, fuzz, bench, load and soak smokes (CI runs it after make test)
	tests/smoke.sh

unit: ## fmt, clippy, unit and doc tests only (no emulator)
	SKIP_E2E=1 tests/run.sh

fmt: ## Format the code
	cargo fmt --all

lint: ## Clippy with warnings as errors
	cargo clippy --workspace --all-targets -- -D warnings

# ---- AWS (see docs/deploy-aws.md) -------------------------------------------

check-infra: ## cfn-lint, sam validate, checkov, least-privilege IAM test, cargo deny (offline)
	infra/check.sh

package: ## x86_64 Lambda zips for provided.al2023 (cargo lambda, glibc 2.34); prints sizes
	infra/package.sh

deploy: ## Build for arm64 with cargo lambda and sam deploy to your AWS account (ARCH, PARAMETERS)
	infra/deploy-aws.sh

load: ## k6 ramp until the pipeline falls behind: highest rate held vs the emulator's ceiling, e2e latency, audit (<4 min)
	k6/load.sh

soak: ## Steady load with 1% poison and 1% failing backend calls, then the audit (DURATION=3m; QUEUE_TYPE=fifo: and each group's order)
	k6/soak.sh

bench: ## Rust vs its peers on the Lambda Runtime API, a CPU-quota memory sweep and cost per 1M messages; writes bench/results/<date>-<host>.md
	cargo build --release -p consumer
	bench/bench.sh --require-rust

bench-quick: ## The same in a few minutes (3 memory sizes, fewer repetitions); writes bench/results/<date>-<host>-quick.md
	cargo build --release -p consumer
	bench/bench.sh --require-rust --quick

fuzz: ## Run every cargo-fuzz target (FUZZ_SECONDS each, default 30)
	fuzz/run.sh $(or $(FUZZ_SECONDS),30)

semver: ## lambda-batch's public API against the previous commit (cargo-semver-checks, installed once)
	lambda-batch/semver.sh

audit: ## Reconcile a run with the stack: make audit LEDGER=k6/results/<run>-ledger.jsonl
	cargo run -q -p tools --bin audit -- --ledger "$(LEDGER)"

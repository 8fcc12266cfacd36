#!/usr/bin/env bash
# `make semver`: lambda-batch's public API against the crate at BASE
# (default the previous commit) with cargo-semver-checks, which builds both
# versions' rustdoc JSON locally: no network once the tool is installed. An
# accidental breaking change (a removed or renamed item, a field or variant
# added to a non-`#[non_exhaustive]` type, ...) fails unless the version says
# it breaks. The tool is installed once, pinned, into
# ~/.cache/sqs-pipeline/tools (about 11 CPU-minutes of compiling).
#   Env: BASE (a git revision, default HEAD~1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION=0.51.0
TOOLS="${SEMVER_TOOLS_DIR:-$HOME/.cache/sqs-pipeline/tools}"
export PATH="$TOOLS/bin:$PATH"
if [[ "$(cargo-semver-checks --version 2>/dev/null)" != *"$VERSION"* ]]; then
  echo "installing cargo-semver-checks $VERSION into $TOOLS (once; several minutes)" >&2
  cargo install --locked --version "$VERSION" --root "$TOOLS" cargo-semver-checks
fi
base="${BASE:-HEAD~1}"
if ! git cat-file -e "$base:lambda-batch/Cargo.toml" 2>/dev/null; then
  echo "$base is not in this clone (a shallow one?) or has no lambda-batch: nothing to compare with" >&2
  exit 0
fi
cargo semver-checks --package lambda-batch --baseline-rev "$base"

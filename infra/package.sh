#!/usr/bin/env bash
# `make package`: x86_64 Lambda zips for provided.al2023, built with cargo
# lambda, without an AWS account:
#   cargo lambda build --release --target x86_64-unknown-linux-gnu.2.34 --output-format zip
#   -> .local/package/{consumer,producer}/bootstrap.zip (one executable `bootstrap` each)
# The `.2.34` suffix makes cargo lambda link with zig against glibc 2.34,
# what provided.al2023 ships, whatever the build host has. The first run
# compiles the AWS SDK for that target (about 4 minutes on 2 cores); later
# runs are incremental. Tools: uv.lock's group build (cargo-lambda, zig),
# installed into .venv-infra/aws.
#   Env: CARGO_TARGET_DIR, PACKAGE_DIR (.local/package), GLIBC (2.34).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
GLIBC="${GLIBC:-2.34}"
OUT="${PACKAGE_DIR:-$REPO/.local/package}"
TRIPLE=x86_64-unknown-linux-gnu

source infra/tools.sh
ensure_venv aws
# cargo lambda finds zig as `python3 -m ziglang` when no `zig` is on PATH.
PATH="$(venv_dir aws)/bin:$PATH"
export PATH
command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TRIPLE" \
  && die "rust target $TRIPLE missing: rustup target add $TRIPLE"

log "cargo lambda build --release --target $TRIPLE.$GLIBC --output-format zip"
cargo lambda build --locked --release --target "$TRIPLE.$GLIBC" --output-format zip --lambda-dir "$OUT" \
  -p consumer -p producer

log "Lambda zips (x86_64, provided.al2023, glibc $GLIBC):"
ls -l "$OUT"/{consumer,producer}/bootstrap.zip >&2

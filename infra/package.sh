#!/usr/bin/env bash
# `make package`: x86_64 Lambda zips built for provided.al2023's glibc, checked
# and measured, without an AWS account:
#   cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.34 -p consumer -p producer
#   -> .local/package/{consumer,producer}.zip (one executable `bootstrap` each)
# zig links against glibc 2.34 symbols whatever the build host has, so the
# binaries start on provided.al2023 even when built on a newer distribution.
# The first run compiles the AWS SDK for that target (about 4 minutes on 2 cores);
# later runs are incremental. Tools: uv.lock's group build, installed into
# .venv-infra/aws (ziglang and cargo-zigbuild ship as wheels).
#   Env: CARGO_TARGET_DIR, PACKAGE_DIR (.local/package), GLIBC (2.34).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
GLIBC="${GLIBC:-2.34}"
OUT="${PACKAGE_DIR:-$REPO/.local/package}"
TRIPLE=x86_64-unknown-linux-gnu

source infra/tools.sh
ensure_venv aws
# cargo-zigbuild finds zig as `python3 -m ziglang` when no `zig` is on PATH.
PATH="$(venv_dir aws)/bin:$PATH"
export PATH
command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TRIPLE" \
  && die "rust target $TRIPLE missing: rustup target add $TRIPLE"

log "cargo zigbuild --release --target $TRIPLE.$GLIBC -p consumer -p producer"
cargo zigbuild --locked --release --target "$TRIPLE.$GLIBC" -p consumer -p producer

target_dir="$(cargo_target_dir)"
mkdir -p "$OUT"
for fn in consumer producer; do
  lambda_zip "$target_dir/$TRIPLE/release/$fn" "$OUT/$fn.zip"
done

log "Lambda zips (x86_64, provided.al2023 glibc $GLIBC):"
python3 infra/lambda_zip.py --arch x86_64 --max-glibc "$GLIBC" "$OUT/consumer.zip" "$OUT/producer.zip"

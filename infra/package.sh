#!/usr/bin/env bash
# `make package`: x86_64 Lambda zips built for provided.al2023's glibc, checked
# and measured, without an AWS account:
#   cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.34 -p consumer -p producer
#   -> .local/package/{consumer,producer}.zip (one executable `bootstrap` each)
# zig links against glibc 2.34 symbols whatever the build host has, so the
# binaries start on provided.al2023 even when built on a newer distribution.
# The first run compiles the AWS SDK for that target (about 4 minutes on 2 cores);
# later runs are incremental. Tools: infra/requirements-build.txt, installed
# into .venv-infra/build (ziglang and cargo-zigbuild ship as wheels).
#   Env: CARGO_TARGET_DIR, PACKAGE_DIR (.local/package), GLIBC (2.34).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
GLIBC="${GLIBC:-2.34}"
OUT="${PACKAGE_DIR:-$REPO/.local/package}"
TRIPLE=x86_64-unknown-linux-gnu

source infra/tools.sh
ensure_venv build
# cargo-zigbuild finds zig as `python3 -m ziglang` when no `zig` is on PATH.
export PATH="$VENVS/build/bin:$PATH"
command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TRIPLE" \
  && die "rust target $TRIPLE missing: rustup target add $TRIPLE"

log "cargo zigbuild --release --target $TRIPLE.$GLIBC -p consumer -p producer"
cargo zigbuild --locked --release --target "$TRIPLE.$GLIBC" -p consumer -p producer

target_dir="$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
mkdir -p "$OUT"
for fn in consumer producer; do
  python3 - "$target_dir/$TRIPLE/release/$fn" "$OUT/$fn.zip" <<'PY'
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.create_system = 3                          # Unix: external_attr carries the mode
info.external_attr = (0o100755 & 0xFFFF) << 16  # regular file, rwxr-xr-x
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(dst + ".tmp", "w") as z:
    z.writestr(info, f.read(), compresslevel=9)
os.replace(dst + ".tmp", dst)
PY
done

log "Lambda zips (x86_64, provided.al2023 glibc $GLIBC):"
python3 infra/lambda_zip.py --arch x86_64 --max-glibc "$GLIBC" "$OUT/consumer.zip" "$OUT/producer.zip"

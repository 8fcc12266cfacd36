#!/usr/bin/env bash
# Build the consumer and producer release binaries and package each as a
# Lambda zip holding one executable named `bootstrap`:
#   .local/dist/consumer.zip, .local/dist/producer.zip
# Honours CARGO_TARGET_DIR (default: target/ in the repo). Extra cargo flags
# can be passed in CARGO_BUILD_FLAGS (e.g. "--locked").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v cargo >/dev/null || die "cargo not found; install Rust (https://rustup.rs)"
DIST="$LOCAL_DIR/dist"
mkdir -p "$DIST"

log "cargo build --release -p consumer -p producer"
# shellcheck disable=SC2086 # CARGO_BUILD_FLAGS is a list of flags
(cd "$REPO" && cargo build --release -p consumer -p producer ${CARGO_BUILD_FLAGS:-}) \
  || die "cargo build failed"

# Where cargo really put the binaries (CARGO_TARGET_DIR, .cargo/config, or target/).
target_dir="$(cd "$REPO" && cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

for fn in consumer producer; do
  bin="$target_dir/release/$fn"
  [[ -x "$bin" ]] || die "expected binary $bin after the build"
  # Python's zipfile rather than zip(1): present wherever the venv is, and the
  # archive is reproducible (fixed timestamp), so an unchanged binary gives an
  # unchanged zip and `deploy` has nothing to update.
  python3 - "$bin" "$DIST/$fn.zip" <<'PY'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.create_system = 3                       # Unix, so external_attr carries the mode
info.external_attr = (0o100755 & 0xFFFF) << 16  # regular file, rwxr-xr-x
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(dst + ".tmp", "w") as z:
    z.writestr(info, f.read(), compresslevel=9)
import os
os.replace(dst + ".tmp", dst)
PY
  log "packaged ${DIST#"$REPO"/}/$fn.zip ($(du -h "$DIST/$fn.zip" | cut -f1), from $bin)"
done

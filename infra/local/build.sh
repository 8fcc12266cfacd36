#!/usr/bin/env bash
# Build the consumer and producer binaries for the local stack and package
# each as a Lambda zip holding one executable named `bootstrap`:
#   .local/dist/consumer.zip, .local/dist/producer.zip
# The cargo profile is CARGO_PROFILE, `local` by default (no LTO, 16 codegen
# units: seconds to rebuild instead of minutes); CARGO_PROFILE=release builds
# what `make package` ships. Honours CARGO_TARGET_DIR (default: target/ in
# the repo). Extra cargo flags can be passed in CARGO_BUILD_FLAGS (e.g. "--locked").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v cargo >/dev/null || die "cargo not found; install Rust (https://rustup.rs)"
DIST="$LOCAL_DIR/dist"
mkdir -p "$DIST"

profile="${CARGO_PROFILE:-local}"
log "cargo build --profile $profile -p consumer -p producer"
# shellcheck disable=SC2086 # CARGO_BUILD_FLAGS is a list of flags
(cd "$REPO" && cargo build --profile "$profile" -p consumer -p producer ${CARGO_BUILD_FLAGS:-}) \
  || die "cargo build failed"

target_dir="$(cargo_target_dir)"
profile_dir="$profile"
[[ "$profile" == dev ]] && profile_dir=debug

for fn in consumer producer; do
  bin="$target_dir/$profile_dir/$fn"
  [[ -x "$bin" ]] || die "expected binary $bin after the build"
  # Reproducible (fixed timestamp), so an unchanged binary gives an unchanged
  # zip and `deploy` has nothing to update.
  lambda_zip "$bin" "$DIST/$fn.zip"
  log "packaged ${DIST#"$REPO"/}/$fn.zip ($(du -h "$DIST/$fn.zip" | cut -f1), from $bin)"
done

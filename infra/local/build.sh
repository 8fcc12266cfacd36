#!/usr/bin/env bash
# Build the consumer and producer binaries for the local stack and package
# each as a Lambda zip holding one executable named `bootstrap`:
#   .local/dist/consumer.zip, .local/dist/producer.zip
# The cargo profile is CARGO_PROFILE, `local` by default (no LTO, 16 codegen
# units: seconds to rebuild instead of minutes); CARGO_PROFILE=dev builds a
# debug binary, CARGO_PROFILE=release what `make package` ships. Honours
# CARGO_TARGET_DIR (default: target/ in the repo). Extra cargo flags can be
# passed in CARGO_BUILD_FLAGS (e.g. "--locked").
#
# Why not `cargo lambda build --output-format zip` (what `make package` and
# `make deploy` use): cargo lambda always passes `--target <triple>`, so its
# artifacts go to <target-dir>/x86_64-unknown-linux-gnu/<profile>/, apart
# from the <target-dir>/<profile>/ that every other build of the workspace
# uses (the tests' fault-proxy, the k6 ceiling, the bench). A cold build
# then compiles every dependency twice: `cargo lambda build --compiler cargo
# --profile local -p consumer -p producer` took 12 min 47 s on the 2-vCPU AMD
# EPYC VM (load 4-6 from other builds, 2026-12-02), on top of the plain build
# it would sit beside. So the binary built here is zipped by Python's own
# zipfile command line, its mtime fixed first so that an unchanged binary
# gives the same bytes and a redeploy has nothing to update.
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

stage="$DIST/.stage"
for fn in consumer producer; do
  bin="$target_dir/$profile_dir/$fn"
  [[ -x "$bin" ]] || die "expected binary $bin after the build"
  rm -rf "$stage" && mkdir -p "$stage"
  cp "$bin" "$stage/bootstrap"
  touch -d @315532800 "$stage/bootstrap" # 1980-01-01 UTC, the earliest date a zip holds
  (cd "$stage" && TZ=UTC python3 -m zipfile -c "$DIST/$fn.zip.tmp" bootstrap) && mv "$DIST/$fn.zip.tmp" "$DIST/$fn.zip"
  log "packaged ${DIST#"$REPO"/}/$fn.zip ($(du -h "$DIST/$fn.zip" | cut -f1), from $bin)"
done
rm -rf "$stage"

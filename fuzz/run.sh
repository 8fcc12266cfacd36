#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while: `make fuzz` (default 60 s each),
# CI with a few seconds each. Exits non-zero on a crash and names the input.
#   fuzz/run.sh [SECONDS] [TARGET...]
# The committed seeds live in fuzz/corpus/<target>/seed-*; what the fuzzer
# adds beside them stays local (gitignored).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

seconds="${1:-60}"
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(producer_parse consumer_event consumer_body)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz (once)" >&2
  cargo install --locked cargo-fuzz@0.13.1
fi

# cargo fuzz passes a few -Z flags; only the stable toolchain is assumed.
# No sanitizer: every crate here forbids unsafe code, and the targets check
# behaviour (panics, broken invariants), which needs none; -O for speed.
export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none -O)

echo "==> building fuzz targets" >&2
cargo fuzz build "${flags[@]}"

failed=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "==> fuzzing $target for ${seconds}s" >&2
  log="$(mktemp)"
  if cargo fuzz run "${flags[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
    runs="$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo '?')"
    echo "fuzz $target: ok, $runs runs in ${seconds}s"
  else
    failed=$((failed + 1))
    grep -E "panicked|assert|SUMMARY" "$log" | head -5 >&2 || true
    crash="$(grep -oE 'artifacts/[^ ]+' "$log" | head -1 || true)"
    echo "fuzz $target: CRASH${crash:+ (input: fuzz/$crash; replay: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${flags[*]} $target $crash)}"
  fi
  rm -f "$log"
done
echo "fuzz: $(( ${#targets[@]} - failed )) passed, $failed failed"
[[ "$failed" == 0 ]]

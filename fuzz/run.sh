#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while: `make fuzz` (60 s each), CI a
# few seconds each. Exits non-zero on a crash and names the input.
#   fuzz/run.sh [SECONDS] [TARGET...]
# The committed seeds are fuzz/corpus/<target>/seed-*; what the fuzzer adds
# beside them stays local (gitignored).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

seconds="${1:-30}"
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(producer_parse consumer_event consumer_body)

cargo_fuzz_version=0.13.1
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
  echo "==> installing cargo-fuzz $cargo_fuzz_version" >&2
  cargo install --locked "cargo-fuzz@$cargo_fuzz_version"
fi

# No sanitizer: every crate here forbids unsafe code, so ASan has nothing to
# find; the targets look for panics and broken invariants. Without it the
# stable toolchain needs no -Z flag (no RUSTC_BOOTSTRAP) and builds are cheaper.
# cargo fuzz's default release build keeps debug assertions and overflow
# checks (its -O would drop them), so arithmetic overflow is a crash too.
flags=(--sanitizer none)

started=$SECONDS
echo "==> building fuzz targets" >&2
cargo fuzz build "${flags[@]}"
echo "==> built in $((SECONDS - started))s" >&2

failed=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "==> fuzzing $target for ${seconds}s ($(ls "corpus/$target" | wc -l) inputs in corpus/$target)" >&2
  log="$(mktemp)"
  # -timeout: an input taking 10 s is a hang, not a slow run.
  if cargo fuzz run "${flags[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -max_len=65536 >"$log" 2>&1; then
    runs="$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo '?')"
    cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo '?')"
    echo "fuzz $target: ok, $runs runs in ${seconds}s, coverage $cov, $(ls "corpus/$target" | wc -l) corpus inputs"
  else
    failed=$((failed + 1))
    grep -E -A3 "panicked|SUMMARY" "$log" | head -12 >&2 || true
    crash="$(grep -oE 'artifacts/[^ ]+' "$log" | head -1 || true)"
    echo "fuzz $target: CRASH${crash:+ input fuzz/$crash; replay: cd fuzz && cargo fuzz run ${flags[*]} $target $crash}"
  fi
  rm -f "$log"
done
echo "fuzz: $((${#targets[@]} - failed)) passed, $failed failed"
[[ "$failed" == 0 ]]

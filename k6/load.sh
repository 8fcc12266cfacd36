#!/usr/bin/env bash
# Load test of the local stack: throughput.js, then e2e.js, then a count of
# what was stored and what went to the DLQ, as a table on stdout and in
# k6/results/load-<stamp>.md (+ .svg chart, + .json for later comparison).
#
#   k6/load.sh            about a minute: 20 s of each script
#   k6/load.sh --smoke    well under a minute (CI): 5 s of each, low rates
#   SMOKE=1 k6/load.sh    same as --smoke
#
# Env (defaults in brackets; smoke values after the slash):
#   RATE [10/2] requests/s and BATCH [10/5] messages per request of throughput.js,
#   DURATION [20s/5s]; E2E_RATE [2/1], E2E_BATCH [1], E2E_DURATION [20s/5s];
#   P95_MS [1000], E2E_P95_MS [5000]; DRAIN_TIMEOUT [120/45] seconds to wait
#   for the queue to empty; RUN_ID [load-<stamp>].
# Brings the stack up with infra/local/up.sh when .local/outputs.env is
# missing or the producer's /health does not answer. Never stops it.
# Exit status: 0 when every threshold held and every accepted message was
# stored; 1 otherwise (the report lists why).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../infra/local/lib.sh"

SMOKE="${SMOKE:-0}"
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument $arg (try --help)" ;;
  esac
done

if [[ "$SMOKE" == 1 ]]; then
  : "${RATE:=2}" "${BATCH:=5}" "${DURATION:=5s}" "${E2E_RATE:=1}" "${E2E_DURATION:=5s}" "${DRAIN_TIMEOUT:=45}"
  : "${E2E_TIMEOUT:=20s}"
else
  : "${RATE:=10}" "${BATCH:=10}" "${DURATION:=20s}" "${E2E_RATE:=2}" "${E2E_DURATION:=20s}" "${DRAIN_TIMEOUT:=120}"
  : "${E2E_TIMEOUT:=30s}"
fi
: "${E2E_BATCH:=1}" "${P95_MS:=1000}" "${E2E_P95_MS:=5000}"

K6="$VENV/bin/k6"
PY="$VENV/bin/python"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
RUN_ID="${RUN_ID:-load-$stamp}"

# ---------------------------------------------------------------- the stack

producer_healthy() {
  [[ -f "$OUTPUTS_FILE" ]] || return 1
  local url
  url="$(sed -n 's/^PRODUCER_URL=//p' "$OUTPUTS_FILE")"
  [[ -n "$url" ]] && curl -fsS --max-time 5 "$url/health" >/dev/null 2>&1
}

if ! producer_healthy; then
  log "no healthy local stack (${OUTPUTS_FILE#"$REPO"/} or GET /health); bringing it up with infra/local/up.sh"
  "$REPO/infra/local/up.sh" >&2
  producer_healthy || die "the stack is still not healthy after infra/local/up.sh"
fi
[[ -x "$K6" ]] || die "k6 not found at $K6; run infra/local/venv.sh"
set -a
# shellcheck disable=SC1090
source "$OUTPUTS_FILE"
set +a

log "run $RUN_ID against $PRODUCER_URL$([[ "$SMOKE" == 1 ]] && echo ' (smoke)')"

# A backlog left by someone else would be counted as ours: wait it out first.
log "waiting for the queue to be empty before starting (at most ${DRAIN_TIMEOUT}s)"
"$PY" "$HERE/report.py" drain --timeout "$DRAIN_TIMEOUT" || warn "starting with a non-empty queue"
before="$RESULTS/.load-$stamp-before.json"
"$PY" "$HERE/report.py" snapshot >"$before"

failed=0
k6run() { # script, then VAR=value settings
  local script="$1"
  shift
  log "k6 run $script.js ($*)"
  # Not -q: that also hides the progress line k6 prints every second.
  if ! env "$@" RUN_ID="$RUN_ID" RESULTS_DIR="$RESULTS" PRODUCER_URL="$PRODUCER_URL" \
    "$K6" run --no-usage-report "$HERE/$script.js"; then
    warn "$script.js failed (thresholds or errors; see above)"
    failed=1
  fi
}

# ---------------------------------------------------------------- the run

k6run throughput RATE="$RATE" BATCH="$BATCH" DURATION="$DURATION" P95_MS="$P95_MS"

drained_flag=()
log "waiting for the queue to drain (at most ${DRAIN_TIMEOUT}s)"
"$PY" "$HERE/report.py" drain --timeout "$DRAIN_TIMEOUT" || drained_flag=(--not-drained)

k6run e2e RATE="$E2E_RATE" BATCH="$E2E_BATCH" DURATION="$E2E_DURATION" \
  E2E_TIMEOUT="$E2E_TIMEOUT" E2E_P95_MS="$E2E_P95_MS" P95_MS="$P95_MS"

log "waiting for the queue to drain (at most ${DRAIN_TIMEOUT}s)"
"$PY" "$HERE/report.py" drain --timeout "$DRAIN_TIMEOUT" || drained_flag=(--not-drained)

# ---------------------------------------------------------------- the report

log "counting stored messages and the DLQ"
report_args=(
  --run-id "$RUN_ID" --stamp "$stamp" --before "$before"
  --throughput "$RESULTS/throughput-$RUN_ID.json" --e2e "$RESULTS/e2e-$RUN_ID.json"
  "${drained_flag[@]}"
)
[[ "$SMOKE" == 1 ]] && report_args+=(--smoke)
if ! "$PY" "$HERE/report.py" report "${report_args[@]}"; then
  failed=1
fi
rm -f "$before"

# After the count, so its writes are not counted as the run's.
log "the emulator's own ceiling for the same calls (PutObject + BatchWriteItem straight from one process)"
ceiling_out="$(cd "$REPO" && cargo run -q -p tools --bin ceiling -- --outputs "$OUTPUTS_FILE" \
  --seconds "$([[ "$SMOKE" == 1 ]] && echo 2 || echo 10)")" || warn "could not measure the emulator's ceiling"
ceiling="$(sed -n 's/^ceiling_messages_per_second=//p' <<<"$ceiling_out")"
if [[ -n "$ceiling" ]]; then
  line="Emulator ceiling for the same S3 and DynamoDB calls made directly (64 in flight, no Lambda, no queue): ${ceiling} messages/s; compare with \"messages/s stored end to end\" above, which is the offered rate as long as the pipeline keeps up."
  echo "$line"
  report_md="$RESULTS/load-$stamp.md"
  [[ -f "$report_md" ]] && printf '\n%s\n' "$line" >>"$report_md"
fi

if [[ "$failed" == 1 ]]; then
  warn "load run $RUN_ID: problems found (see above)"
  exit 1
fi
log "load run $RUN_ID: all thresholds held and every accepted message was stored"

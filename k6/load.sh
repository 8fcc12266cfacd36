#!/usr/bin/env bash
# Load test of the local stack (`make load`): the emulator's own ceiling for
# the pipeline's calls, a throughput ramp (k6/ramp.py: steps of throughput.js
# at a rising arrival rate until one is not held), e2e.js, then the count of
# what was stored and what went to the DLQ. Prints the highest rate held,
# the ceiling and their ratio, and writes k6/results/load-<stamp>.md (+ .svg
# chart, + .json for later comparison).
#
#   k6/load.sh            under 4 minutes: ramp from 100 msg/s in steps of
#                         100 msg/s, 15 s each, for at most 150 s; 20 s of e2e
#   k6/load.sh --smoke    well under a minute (CI): three 4 s steps of
#                         10, 20 and 30 msg/s, 5 s of e2e
#   SMOKE=1 k6/load.sh    same as --smoke
#
# Env (defaults in brackets; smoke values after the slash):
#   the ramp: RAMP_START [100/10], RAMP_STEP [100/10], RAMP_MAX [2000/30]
#   messages/s; STEP_DURATION [15s/4s]; RAMP_BUDGET [150/40] seconds;
#   BATCH [10/5] messages per request;
#   a step is held when: P95_MS [1000] (POST p95 below), MAX_ERROR_PCT [1]
#   (messages not accepted), MAX_DROPPED_PCT [1] (iterations k6 could not
#   start), BACKLOG_SLACK [100] messages and MAX_BACKLOG_PCT [5] (the queue's
#   backlog may grow by the larger of the two over a step);
#   CEILING_SECONDS [10/2]; E2E_RATE [2/1], E2E_BATCH [1], E2E_DURATION
#   [20s/5s], E2E_TIMEOUT [30s/20s], E2E_P95_MS [5000]; DRAIN_TIMEOUT [120/45]
#   seconds to wait for the queue to empty; RUN_ID [load-<stamp>];
#   CEILING_BIN [built here, local profile] a ceiling binary to use instead.
# Brings the stack up with infra/local/up.sh when .local/outputs.env is
# missing or the producer's /health does not answer. Never stops it.
# Exit status: 0 when a step was held, the e2e thresholds held and every
# accepted message was stored; 1 otherwise (the report lists why).
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
  : "${RAMP_START:=10}" "${RAMP_STEP:=10}" "${RAMP_MAX:=30}" "${STEP_DURATION:=4s}" "${RAMP_BUDGET:=40}"
  : "${BATCH:=5}" "${CEILING_SECONDS:=2}" "${E2E_RATE:=1}" "${E2E_DURATION:=5s}" "${E2E_TIMEOUT:=20s}"
  : "${DRAIN_TIMEOUT:=45}"
else
  : "${RAMP_START:=100}" "${RAMP_STEP:=100}" "${RAMP_MAX:=2000}" "${STEP_DURATION:=15s}" "${RAMP_BUDGET:=150}"
  : "${BATCH:=10}" "${CEILING_SECONDS:=10}" "${E2E_RATE:=2}" "${E2E_DURATION:=20s}" "${E2E_TIMEOUT:=30s}"
  : "${DRAIN_TIMEOUT:=120}"
fi
: "${E2E_BATCH:=1}" "${P95_MS:=1000}" "${E2E_P95_MS:=5000}"
export RAMP_START RAMP_STEP RAMP_MAX STEP_DURATION RAMP_BUDGET BATCH P95_MS

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

# First, so its items (stamped with its start) fall before the ramp's window
# and are never counted as stored messages; the same session and emulator.
# The local profile: a debug-build client is itself the bottleneck (about a
# third of the rate on this machine).
log "the emulator's own ceiling for the same calls (SendMessageBatch + PutObject + BatchWriteItem straight from one process, ${CEILING_SECONDS}s)"
ceiling=""
if [[ -n "${CEILING_BIN:-}" ]] || (cd "$REPO" && cargo build -q --profile local -p tools --bin ceiling); then
  ceiling_out="$("${CEILING_BIN:-$(cargo_target_dir)/local/ceiling}" --outputs "$OUTPUTS_FILE" --seconds "$CEILING_SECONDS")" \
    || warn "could not measure the emulator's ceiling"
  echo "${ceiling_out:-}" | sed 's/^/    /' >&2
  ceiling="$(sed -n 's/^ceiling_messages_per_second=//p' <<<"${ceiling_out:-}")"
else
  warn "could not build the ceiling tool"
fi

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

log "throughput ramp (k6/ramp.py): steps of throughput.js until one is not held"
if ! K6="$K6" RUN_ID="$RUN_ID" "$PY" "$HERE/ramp.py" run --run-id "$RUN_ID" --results "$RESULTS" >/dev/null; then
  warn "the ramp ran no step"
  failed=1
fi

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
  --throughput "$RESULTS/throughput-ramp-$RUN_ID.json" --e2e "$RESULTS/e2e-$RUN_ID.json"
  "${drained_flag[@]}"
)
[[ -n "$ceiling" ]] && report_args+=(--ceiling "$ceiling" --ceiling-seconds "$CEILING_SECONDS")
[[ "$SMOKE" == 1 ]] && report_args+=(--smoke)
if ! "$PY" "$HERE/report.py" report "${report_args[@]}"; then
  failed=1
fi
rm -f "$before"

if [[ "$failed" == 1 ]]; then
  warn "load run $RUN_ID: problems found (see above); $SECONDS s"
  exit 1
fi
log "load run $RUN_ID: done in $SECONDS s; every accepted message was stored"

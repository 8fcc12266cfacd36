#!/usr/bin/env bash
# `make soak`: the pipeline at a steady rate with poison messages and failing
# backend calls, then the audit of every acknowledged message.
#
#   k6/soak.sh            3 minutes: 5 req/s x 10 messages, 1% poison requests,
#                         1% of S3, DynamoDB and SQS calls failing each way:
#                         errors, throttling, UnprocessedItems, partial
#                         SendMessageBatch failures, resets, stalls and lost
#                         answers
#   k6/soak.sh --smoke    (CI) 20 s at 2 req/s x 5 messages (fifo: 1 req/s x 24,
#                         no poison: the standard smoke covers the DLQ)
#   QUEUE_TYPE=fifo k6/soak.sh   the same faults on a FIFO queue: 0.5 req/s x
#                         24 messages over 2 groups per k6 VU (12 per group
#                         per request, each group 4 requests long), 2% poison
#                         requests, failed messages resent by the client, and
#                         the audit checks every group's order on the stored
#                         records (the emulator's FIFO consumer drained about
#                         14 messages/s on the 2-vCPU VM, 2026-12-02, under
#                         these faults; much faster and the queue does not
#                         drain within AUDIT_WAIT [300])
#   DURATION=2h k6/soak.sh  the original experiment's length
#
# Env: QUEUE_TYPE [standard|fifo], DURATION, RATE, BATCH, GROUPS_PER_VU,
# GROUP_REQUESTS, RESENDS (see soak.js), POISON_RATE [0.01], FAULT_RATE [0.01]
# (share of each faulted operation's calls, per kind of fault),
# STACK_NAME [soak-<stamp>], AUDIT_WAIT [180], FAULT_PROXY_BIN [built here,
# dev profile] a fault-proxy binary to use instead.
# It deploys its own stack (with a reject marker and the shortest visibility
# timeout AWS would accept, 18 s = 6 x a 3 s function timeout, so poison
# reaches the DLQ in about 90 s, within AUDIT_WAIT), routes both functions
# through the fault proxy (tools/src/bin/fault-proxy.rs), runs k6/soak.js with
# a ledger of acknowledged message ids, then `audit`. Exit status: the
# audit's (0 nothing lost or duplicated, 1 loss or duplication, 2 still
# pending), or 1 if k6 itself failed to run.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamp="$(date -u +%Y%m%d-%H%M%S)"
export STACK_NAME="${STACK_NAME:-soak-$stamp}"
source "$HERE/../infra/local/lib.sh"

SMOKE=0
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg (try --help)" ;;
  esac
done
: "${QUEUE_TYPE:=standard}"
case "$QUEUE_TYPE" in
  standard) queue_overrides="" ;;
  # FIFO: at most 10 messages a batch and no batching window (AWS's rules).
  fifo) queue_overrides="QueueType=fifo BatchSize=10 MaximumBatchingWindowInSeconds=0" ;;
  *) die "QUEUE_TYPE must be standard or fifo, got $QUEUE_TYPE" ;;
esac
if [[ "$SMOKE" == 1 && "$QUEUE_TYPE" == fifo ]]; then
  : "${DURATION:=20s}" "${RATE:=1}" "${BATCH:=24}" "${POISON_RATE:=0}" "${FAULT_RATE:=0.05}"
elif [[ "$SMOKE" == 1 ]]; then
  : "${DURATION:=20s}" "${RATE:=2}" "${BATCH:=5}" "${POISON_RATE:=0.05}" "${FAULT_RATE:=0.05}"
elif [[ "$QUEUE_TYPE" == fifo ]]; then
  : "${DURATION:=3m}" "${RATE:=0.5}" "${BATCH:=24}" "${POISON_RATE:=0.02}" "${FAULT_RATE:=0.01}" "${AUDIT_WAIT:=300}"
else
  : "${DURATION:=3m}" "${RATE:=5}" "${BATCH:=10}" "${POISON_RATE:=0.01}" "${FAULT_RATE:=0.01}"
fi
: "${AUDIT_WAIT:=180}"
RUN_ID="soak-$stamp"
RESULTS="$HERE/results"
LEDGER="$RESULTS/$RUN_ID-ledger.jsonl"
mkdir -p "$RESULTS" "$LOCAL_DIR"

bash "$REPO/infra/local/venv.sh"
emulator_healthy || bash "$REPO/infra/local/emulator.sh" start
[[ -f "$LOCAL_DIR/dist/consumer.zip" && -f "$LOCAL_DIR/dist/producer.zip" ]] || bash "$REPO/infra/local/build.sh"

marker="poison-pill-$stamp"
log "deploying stack $STACK_NAME ($QUEUE_TYPE queue, reject marker $marker)"
PARAMETER_OVERRIDES="RejectMarker=$marker QueueVisibilityTimeout=18 ConsumerTimeout=3 $queue_overrides" \
  bash "$REPO/infra/local/deploy.sh" >/dev/null
set -a
# shellcheck disable=SC1090
. "$OUTPUTS_FILE"
set +a

log "starting the fault proxy (each kind of fault hits ${FAULT_RATE} of its operation's calls)"
[[ -n "${FAULT_PROXY_BIN:-}" ]] || (cd "$REPO" && cargo build -q -p tools --bin fault-proxy)
proxy_log="$LOCAL_DIR/fault-proxy-$STACK_NAME.log"
"${FAULT_PROXY_BIN:-$(cargo_target_dir)/debug/fault-proxy}" --upstream "$ENDPOINT" --seconds 7200 \
  --fault "s3-put:slowdown:$FAULT_RATE" \
  --fault "s3-put:reset:$FAULT_RATE" \
  --fault "s3-put:stall:$FAULT_RATE" \
  --fault "dynamodb-batch-write:throttling:$FAULT_RATE" \
  --fault "dynamodb-batch-write:unprocessed:$FAULT_RATE" \
  --fault "dynamodb-batch-write:reset:$FAULT_RATE" \
  --fault "sqs-send-batch:sqs-partial:$FAULT_RATE" \
  --fault "sqs-send-batch:sqs-500:$FAULT_RATE" \
  --fault "sqs-send-batch:reset:$FAULT_RATE" \
  --fault "sqs-send-batch:stall:$FAULT_RATE" \
  --fault "sqs-send-batch:drop-response:$FAULT_RATE" >"$proxy_log" 2>&1 &
proxy_pid=$!
trap 'kill "$proxy_pid" 2>/dev/null || true' EXIT
proxy_url=""
for _ in $(seq 100); do
  proxy_url="$(sed -n 's/^fault-proxy listening on \(http[^ ]*\).*/\1/p' "$proxy_log")"
  [[ -n "$proxy_url" ]] && break
  kill -0 "$proxy_pid" 2>/dev/null || { cat "$proxy_log" >&2; die "fault proxy exited"; }
  sleep 0.1
done
[[ -n "$proxy_url" ]] || die "fault proxy did not start (see $proxy_log)"

# Both functions send their AWS calls through the proxy (the SDK's
# service-specific endpoint variables win over AWS_ENDPOINT_URL).
route() {
  local fn="$1"
  shift
  awsl lambda get-function-configuration --function-name "$fn" --query 'Environment.Variables' --output json |
    "$VENV/bin/python" -c 'import json,sys; v=json.load(sys.stdin) or {}; v.update(dict(a.split("=",1) for a in sys.argv[1:])); print(json.dumps({"Variables": v}))' "$@" \
      >"$LOCAL_DIR/env-$fn.json"
  awsl lambda update-function-configuration --function-name "$fn" \
    --environment "file://$LOCAL_DIR/env-$fn.json" >/dev/null
}
route "$CONSUMER_FUNCTION_NAME" "AWS_ENDPOINT_URL_S3=$proxy_url" "AWS_ENDPOINT_URL_DYNAMODB=$proxy_url"
route "$PRODUCER_FUNCTION_NAME" "AWS_ENDPOINT_URL_SQS=$proxy_url"

log "k6 soak ($QUEUE_TYPE): $DURATION at $RATE req/s x $BATCH messages, poison share $POISON_RATE (ledger ${LEDGER#"$REPO"/})"
k6_status=0
QUEUE_TYPE="$QUEUE_TYPE" RUN_ID="$RUN_ID" DURATION="$DURATION" RATE="$RATE" BATCH="$BATCH" POISON_RATE="$POISON_RATE" \
  REJECT_MARKER="$marker" LEDGER=1 SAMPLE_RATE=0 PRODUCER_URL="$PRODUCER_URL" \
  "$VENV/bin/k6" run --quiet --log-format=raw --console-output="$LEDGER" "$HERE/soak.js" || k6_status=$?
tail -n 1 "$proxy_log" || true
[[ -s "$LEDGER" ]] || die "k6 acknowledged no message (exit $k6_status); nothing to audit"

log "audit of $(grep -c messageId "$LEDGER") acknowledged messages"
audit_status=0
(cd "$REPO" && cargo run -q -p tools --bin audit -- --ledger "$LEDGER" --outputs "$OUTPUTS_FILE" --wait "$AUDIT_WAIT") || audit_status=$?
if [[ "$audit_status" == 0 && "$k6_status" != 0 ]]; then
  warn "k6 ended with status $k6_status (a threshold; see above), but nothing was lost or duplicated"
fi
exit "$audit_status"

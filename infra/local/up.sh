#!/usr/bin/env bash
# One command to a running local pipeline: toolchain, emulator, build, deploy,
# then one message end to end (producer URL -> SQS -> consumer -> S3 + DynamoDB).
# Env: SKIP_BUILD=1 deploys the zips already in .local/dist; E2E_TIMEOUT (30s).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"

"$HERE/venv.sh"
"$HERE/emulator.sh" start
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
  log "SKIP_BUILD=1: using the zips in .local/dist"
else
  "$HERE/build.sh"
fi
"$HERE/deploy.sh"

set -a
# shellcheck disable=SC1090
source "$OUTPUTS_FILE"
set +a
py="$VENV/bin/python"
json_get() { "$py" -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[int(k)] if k.isdigit() else d[k]
print(d)' "$1"; }

log "POST $PRODUCER_URL/messages {\"hello\":\"world\"}"
resp="$(mktemp)"
trap 'rm -f "$resp"' EXIT
status="$(curl -sS --max-time 15 -o "$resp" -w '%{http_code}' -X POST "$PRODUCER_URL/messages" \
  -H 'content-type: application/json' -d '{"hello":"world"}')" \
  || die "producer URL did not answer"
echo "    HTTP $status $(cat "$resp")" >&2
[[ "$status" == 202 ]] || die "producer answered $status, expected 202"
message_id="$(json_get accepted.0.messageId <"$resp")" || die "no accepted[0].messageId in the answer"
record_id="$(json_get accepted.0.id <"$resp")" || die "no accepted[0].id in the answer"

log "waiting for the consumer to store message $message_id (GET /messages/$message_id)"
deadline=$((SECONDS + ${E2E_TIMEOUT:-30}))
while :; do
  status="$(curl -sS --max-time 5 -o "$resp" -w '%{http_code}' "$PRODUCER_URL/messages/$message_id" || true)"
  [[ "$status" == 200 ]] && break
  if ((SECONDS >= deadline)); then
    warn "last answer: HTTP $status $(cat "$resp" 2>/dev/null)"
    warn "consumer log: awsl logs tail or see .local/ministack.log"
    tail -n 20 "$LOCAL_DIR/ministack.log" >&2 || true
    die "record not stored within ${E2E_TIMEOUT:-30}s"
  fi
  sleep 0.5
done
echo "    HTTP 200 $(cat "$resp")" >&2

s3_key="$(awsl dynamodb get-item --table-name "$TABLE_NAME" \
  --key "{\"id\":{\"S\":\"$record_id\"}}" --query 'Item.s3Key.S' --output text)"
log "DynamoDB item $record_id in $TABLE_NAME:"
awsl dynamodb get-item --table-name "$TABLE_NAME" --key "{\"id\":{\"S\":\"$record_id\"}}" --output json >&2
log "S3 object s3://$BUCKET_NAME/$s3_key:"
awsl s3 cp "s3://$BUCKET_NAME/$s3_key" - >&2
echo >&2

aws="${VENV#"$PWD"/}/bin/aws --endpoint-url $ENDPOINT"
cat <<MSG

Local pipeline is up (stack $STACK_NAME, emulator $ENDPOINT).

  Producer URL: $PRODUCER_URL
  Queue URL:    $QUEUE_URL
  DLQ URL:      $DLQ_URL
  Bucket:       $BUCKET_NAME
  Table:        $TABLE_NAME
  (all in ${OUTPUTS_FILE#"$REPO"/}; load with: set -a; . ${OUTPUTS_FILE#"$REPO"/}; set +a)

Try it:

  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=$AWS_REGION

  curl -sS -X POST $PRODUCER_URL/messages -H 'content-type: application/json' -d '{"hello":"again"}'
  curl -sS $PRODUCER_URL/messages/<messageId>

  $aws sqs send-message --queue-url $QUEUE_URL --message-body '{"raw":true}'
  $aws s3 ls s3://$BUCKET_NAME/ --recursive
  $aws dynamodb scan --table-name $TABLE_NAME
  $aws sqs receive-message --queue-url $DLQ_URL --max-number-of-messages 10 --attribute-names All

Stop everything with: make down
MSG

#!/usr/bin/env bash
# What is running locally: the emulator, the stack, and the queue depths.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"

"$HERE/emulator.sh" status || exit 0
[[ -x "$VENV/bin/aws" ]] || exit 0

stack_status="$(awsl cloudformation describe-stacks --stack-name "$STACK_NAME" \
  --query 'Stacks[0].StackStatus' --output text 2>/dev/null || echo "not deployed")"
echo "stack $STACK_NAME: $stack_status"
[[ "$stack_status" == *COMPLETE && -f "$OUTPUTS_FILE" ]] || exit 0

set -a
# shellcheck disable=SC1090
source "$OUTPUTS_FILE"
set +a
depth() {
  awsl sqs get-queue-attributes --queue-url "$1" \
    --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
    --query 'Attributes.[ApproximateNumberOfMessages,ApproximateNumberOfMessagesNotVisible]' \
    --output text | awk '{printf "%s visible, %s in flight", $1, $2}'
}
echo "queue: $(depth "$QUEUE_URL")"
echo "dlq:   $(depth "$DLQ_URL")"
echo "outputs (${OUTPUTS_FILE#"$REPO"/}):"
grep -v '^#' "$OUTPUTS_FILE" | sed 's/^/  /'

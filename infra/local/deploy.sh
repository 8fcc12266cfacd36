#!/usr/bin/env bash
# Deploy infra/template.yaml to the local emulator (create or update), the way
# `sam deploy` does it on AWS: package (upload the zips, rewrite CodeUri to
# s3://bucket/<content hash>), then a CloudFormation change set.
#
# Needs .local/dist/{consumer,producer}.zip (build.sh) and a running emulator.
# Env: STACK_NAME (sqs-pipeline), ARTIFACTS_BUCKET (<stack>-artifacts),
#      PARAMETER_OVERRIDES (extra "Key=Value ..." appended to, and winning
#      over, the local ones), DIST_DIR (.local/dist), DEPLOY_TIMEOUT (300 s).
# Writes .local/outputs.env (.local/outputs-<stack>.env for another stack
# name): KEY=VALUE lines for other scripts and tests.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_venv
require_emulator

# DIST_DIR: where the zips are (default .local/dist), e.g. to deploy test doubles.
DIST="${DIST_DIR:-$LOCAL_DIR/dist}"
ARTIFACTS_BUCKET="${ARTIFACTS_BUCKET:-${STACK_NAME}-artifacts}"
DEPLOY_TIMEOUT="${DEPLOY_TIMEOUT:-300}"
for fn in consumer producer; do
  [[ -f "$DIST/$fn.zip" ]] || die "missing $DIST/$fn.zip; run infra/local/build.sh first"
done

case "$(uname -m)" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "unsupported host architecture $(uname -m)" ;;
esac

# The emulator runs the bootstrap as a host process, so Architecture follows
# the host. The other values turn off what only makes sense on AWS.
params=(
  "Architecture=$arch"
  "ProducerAuthType=NONE"
  "S3ForcePathStyle=true"
  "LogLevel=${LOG_LEVEL:-INFO}"
  "TablePointInTimeRecovery=false"
  "TableDeletionProtection=false"
)
# shellcheck disable=SC2206 # word splitting is the point: "K=V K=V"
[[ -n "${PARAMETER_OVERRIDES:-}" ]] && params+=(${PARAMETER_OVERRIDES})

# The emulator accepts a visibility timeout shorter than the function timeout;
# AWS does not (infra/EMULATOR-GAPS.md). Refuse here what AWS would refuse, so
# no local run leans on that leniency.
"$VENV/bin/python" "$REPO/infra/check_parameters.py" "${params[@]}" \
  || die "parameters refused (${params[*]}); see above"

if ! awsl s3api head-bucket --bucket "$ARTIFACTS_BUCKET" >/dev/null 2>&1; then
  log "creating artifacts bucket $ARTIFACTS_BUCKET"
  awsl s3api create-bucket --bucket "$ARTIFACTS_BUCKET" >/dev/null
fi

# Stage the template next to the zips at the paths its CodeUri names
# (../target/lambda/<fn>/bootstrap.zip, what cargo lambda writes), so the
# template is deployed unchanged.
# Per stack, so that several deploys (parallel tests) never share files.
stage="$LOCAL_DIR/stage/$STACK_NAME"
rm -rf "$stage"
mkdir -p "$stage/infra"
cp "$REPO/infra/template.yaml" "$stage/infra/template.yaml"
for fn in consumer producer; do
  mkdir -p "$stage/target/lambda/$fn"
  cp "$DIST/$fn.zip" "$stage/target/lambda/$fn/bootstrap.zip"
done

log "packaging (uploading code to s3://$ARTIFACTS_BUCKET/$STACK_NAME/)"
pkg_log="$stage/package.log"
awsl cloudformation package \
  --template-file "$stage/infra/template.yaml" \
  --s3-bucket "$ARTIFACTS_BUCKET" --s3-prefix "$STACK_NAME" \
  --output-template-file "$stage/packaged.yaml" >"$pkg_log" 2>&1 \
  || { tail -n 20 "$pkg_log" >&2; die "aws cloudformation package failed"; }

# A first create that failed leaves ROLLBACK_COMPLETE, which cannot be updated;
# locally there is nothing to keep, so start over.
prev_status="$(awsl cloudformation describe-stacks --stack-name "$STACK_NAME" \
  --query 'Stacks[0].StackStatus' --output text 2>/dev/null || true)"
if [[ "$prev_status" == ROLLBACK_COMPLETE ]]; then
  warn "stack $STACK_NAME is ROLLBACK_COMPLETE from a failed create; deleting it first"
  awsl cloudformation delete-stack --stack-name "$STACK_NAME"
  with_timeout 120 "$VENV/bin/aws" --endpoint-url "$ENDPOINT" cloudformation wait \
    stack-delete-complete --stack-name "$STACK_NAME" || die "could not delete $STACK_NAME"
fi

log "deploying stack $STACK_NAME (${params[*]})"
if ! with_timeout "$DEPLOY_TIMEOUT" "$VENV/bin/aws" --endpoint-url "$ENDPOINT" cloudformation deploy \
  --stack-name "$STACK_NAME" \
  --template-file "$stage/packaged.yaml" \
  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
  --parameter-overrides "${params[@]}" \
  --no-fail-on-empty-changeset; then
  warn "deploy failed; stack events (newest first):"
  # shellcheck disable=SC2016 # backticks are JMESPath literals
  awsl cloudformation describe-stack-events --stack-name "$STACK_NAME" \
    --query 'StackEvents[?contains(ResourceStatus, `FAILED`)].[LogicalResourceId,ResourceStatus,ResourceStatusReason]' \
    --output text >&2 2>/dev/null || true
  die "deploy of $STACK_NAME failed"
fi

# One describe-stacks for all outputs and parameters ("Key<TAB>Value" lines);
# plain variables rather than associative arrays, for macOS's bash 3.2.
stack_info="$(awsl cloudformation describe-stacks --stack-name "$STACK_NAME" \
  --query 'Stacks[0].[Outputs[].[OutputKey,OutputValue], Parameters[].[ParameterKey,ParameterValue]][]' \
  --output text)"
output() {
  local v
  v="$(awk -F'\t' -v k="$1" '$1 == k { print $2; exit }' <<<"$stack_info")"
  [[ -n "$v" ]] || die "stack $STACK_NAME has no output or parameter $1"
  echo "$v"
}

# Emulator gap (infra/EMULATOR-GAPS.md): CloudFormation stores the mapping's
# ScalingConfig.MaximumConcurrency as the parameter's string, and the SQS
# poller then fails on every pass, for every mapping. Re-set it as a number
# through the Lambda API after each deploy. Not needed, and not done, on AWS.
# Provisioned mappings have no ScalingConfig (AWS refuses it next to
# ProvisionedPollerConfig), so they are left alone.
consumer_name="$(output ConsumerFunctionName)"
max_concurrency="$(output MaximumConcurrency)"
if [[ "$(output PollingMode)" != provisioned ]]; then
  for uuid in $(awsl lambda list-event-source-mappings --function-name "$consumer_name" \
    --query 'EventSourceMappings[].UUID' --output text); do
    awsl lambda update-event-source-mapping --uuid "$uuid" \
      --scaling-config "MaximumConcurrency=$max_concurrency" >/dev/null
  done
fi

# Prove the functions run the zips just built (a stale function is the classic
# "my change did nothing" trap).
for fn in Consumer Producer; do
  name="$(output "${fn}FunctionName")"
  fn="$(tr '[:upper:]' '[:lower:]' <<<"$fn")"
  want="$("$VENV/bin/python" -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1],"rb").read()).digest()).decode())' "$DIST/$fn.zip")"
  got="$(awsl lambda get-function-configuration --function-name "$name" --query CodeSha256 --output text)"
  [[ "$got" == "$want" ]] || die "$name runs code $got, but $DIST/$fn.zip is $want"
done
log "both functions run the code in ${DIST#"$REPO"/}"

# The stored Function URL has AWS's https://<id>.lambda-url.<region>.on.aws/
# shape; the emulator serves it path-style on its own port.
aws_url="$(output ProducerUrl)"
url_id="${aws_url#https://}"
url_id="${url_id%%.*}"
producer_url="$ENDPOINT/_aws/lambda-url/$url_id"

cat >"$OUTPUTS_FILE" <<ENV
# Written by infra/local/deploy.sh for stack $STACK_NAME. Source it.
ENDPOINT=$ENDPOINT
AWS_ENDPOINT_URL=$ENDPOINT
AWS_REGION=$AWS_REGION
AWS_DEFAULT_REGION=$AWS_REGION
STACK_NAME=$STACK_NAME
PRODUCER_URL=$producer_url
PRODUCER_FUNCTION_URL=$aws_url
QUEUE_URL=$(output QueueUrl)
QUEUE_ARN=$(output QueueArn)
DLQ_URL=$(output DlqUrl)
DLQ_ARN=$(output DlqArn)
BUCKET_NAME=$(output BucketName)
TABLE_NAME=$(output TableName)
CONSUMER_FUNCTION_NAME=$(output ConsumerFunctionName)
PRODUCER_FUNCTION_NAME=$(output ProducerFunctionName)
ENV

log "stack $STACK_NAME deployed; outputs (also in ${OUTPUTS_FILE#"$REPO"/}):"
grep -v "^#" "$OUTPUTS_FILE" | sed 's/^/    /' >&2

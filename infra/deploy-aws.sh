#!/usr/bin/env bash
# `make deploy`: build both functions with cargo lambda and deploy
# infra/template.yaml to the AWS account and region of your credentials with
# `sam deploy` (defaults in samconfig.toml; it shows the change set and asks
# before applying it). Not run in CI: nobody here has an AWS account.
#   Env: ARCH (arm64 | x86_64, default arm64), STACK_NAME (samconfig's
#        sqs-pipeline), PARAMETERS (template parameters, "Key=Value ...",
#        e.g. "AlarmEmail=ops@example.com LogLevel=DEBUG"), DEPLOY_ARGS (more
#        `sam deploy` flags, e.g. --no-confirm-changeset).
# Needs: cargo, python3, AWS credentials (AWS_PROFILE or the usual chain).
# cargo lambda, zig and SAM CLI are installed, pinned (uv.lock), into
# .venv-infra/aws.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source infra/tools.sh

ARCH="${ARCH:-arm64}"
case "$ARCH" in
  arm64) triple=aarch64-unknown-linux-gnu ;;
  x86_64) triple=x86_64-unknown-linux-gnu ;;
  *) die "ARCH must be arm64 or x86_64, not $ARCH" ;;
esac

ensure_venv aws # cargo-lambda, zig, SAM CLI, PyYAML
# Before the build: refuse a visibility timeout below 6 x ConsumerTimeout +
# MaximumBatchingWindowInSeconds and the other cross-parameter rules that
# CloudFormation cannot check itself.
# shellcheck disable=SC2206 # word splitting is the point: "K=V K=V"
"$(venv_dir aws)/bin/python" infra/check_parameters.py "Architecture=$ARCH" ${PARAMETERS:-} \
  || die "parameters refused (PARAMETERS=\"${PARAMETERS:-}\"); see above"

PATH="$(venv_dir aws)/bin:$PATH"
export PATH
export SAM_CLI_TELEMETRY="${SAM_CLI_TELEMETRY:-0}"
if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
  die "AWS_ENDPOINT_URL is set ($AWS_ENDPOINT_URL): unset it to deploy to AWS (the local stack is 'make up')"
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$triple"; then
  log "rustup target add $triple"
  rustup target add "$triple"
fi

# The template's CodeUri is ../target/lambda/<fn>/bootstrap.zip, relative to
# infra/: write the zips there whatever CARGO_TARGET_DIR says. The `.2.34`
# suffix links against glibc 2.34 (zig), what provided.al2023 ships.
log "cargo lambda build --release --target $triple.2.34 --output-format zip"
cargo lambda build --release --target "$triple.2.34" --output-format zip --lambda-dir "$REPO/target/lambda" \
  --package consumer --package producer --locked

# shellcheck disable=SC2206 # word splitting is the point: "K=V K=V"
args=(--config-file samconfig.toml --parameter-overrides "Architecture=$ARCH" ${PARAMETERS:-})
[[ -z "${STACK_NAME:-}" ]] || args+=(--stack-name "$STACK_NAME")
log "sam deploy ${args[*]} ${DEPLOY_ARGS:-}"
# shellcheck disable=SC2086 # DEPLOY_ARGS is a list of flags
sam deploy "${args[@]}" ${DEPLOY_ARGS:-}

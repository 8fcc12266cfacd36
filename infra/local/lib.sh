# The local stack's settings on top of the script library (infra/tools.sh:
# log, die, ensure_venv, ...), for infra/local/*.sh, tests/run.sh and k6/*.sh.
# Source it; do not execute it.
# shellcheck shell=bash

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../tools.sh
source "$REPO/infra/tools.sh"
LOCAL_DIR="$REPO/.local"
VENV="$(venv_dir local)" # the local toolchain (ensure_venv local)

MINISTACK_PORT="${MINISTACK_PORT:-4566}"
ENDPOINT="http://127.0.0.1:${MINISTACK_PORT}"
STACK_NAME="${STACK_NAME:-sqs-pipeline}"
# Stack outputs for other scripts and tests: .local/outputs.env for the default
# stack, .local/outputs-<stack>.env for any other.
if [[ "$STACK_NAME" == sqs-pipeline ]]; then
  OUTPUTS_FILE="${OUTPUTS_FILE:-$LOCAL_DIR/outputs.env}"
else
  OUTPUTS_FILE="${OUTPUTS_FILE:-$LOCAL_DIR/outputs-$STACK_NAME.env}"
fi

# What every client (and every Lambda process the emulator spawns, since they
# inherit its environment) needs to talk to the emulator and not to AWS.
# Fixed values: a developer's real credentials, profile or region must never
# reach local calls.
export AWS_ENDPOINT_URL="$ENDPOINT"
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
unset AWS_PROFILE AWS_SESSION_TOKEN
export AWS_PAGER=""

# awscli v1 from the venv, always against the emulator.
awsl() { "$VENV/bin/aws" --endpoint-url "$ENDPOINT" "$@"; }

require_venv() {
  [[ -x "$VENV/bin/aws" && -x "$VENV/bin/ministack" ]] \
    || die "no toolchain in $VENV; run infra/local/venv.sh first"
}

emulator_healthy() {
  curl -fsS --max-time 2 "$ENDPOINT/_ministack/health" >/dev/null 2>&1
}

require_emulator() {
  emulator_healthy || die "emulator not reachable at $ENDPOINT; run infra/local/emulator.sh start"
}

# For a script that needs the emulator only while it runs (tests/run.sh,
# tests/smoke.sh): start one unless one answers on MINISTACK_PORT, and stop
# it when the script exits, if it was started here. Sets the EXIT trap.
emulator_while_running() {
  emulator_healthy && return 0
  bash "$REPO/infra/local/emulator.sh" start
  trap 'bash "$REPO/infra/local/emulator.sh" stop || true' EXIT
}

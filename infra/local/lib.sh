# Shared helpers for infra/local/*.sh. Source it; do not execute it.
# shellcheck shell=bash

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL_DIR="$REPO/.local"
VENV="$REPO/.venv"

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

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarn:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# awscli v1 from the venv, always against the emulator.
awsl() { "$VENV/bin/aws" --endpoint-url "$ENDPOINT" "$@"; }

require_venv() {
  [[ -x "$VENV/bin/aws" && -x "$VENV/bin/ministack" ]] \
    || die "no toolchain in $VENV; run infra/local/venv.sh first"
}

# Run "$@" for at most $1 seconds where timeout(1) exists (GNU coreutils);
# elsewhere (macOS) run it as is: the AWS CLI waiters used here are bounded.
with_timeout() {
  local secs="$1"
  shift
  if command -v timeout >/dev/null; then timeout "$secs" "$@"; else "$@"; fi
}

sha256_file() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

emulator_healthy() {
  curl -fsS --max-time 2 "$ENDPOINT/_ministack/health" >/dev/null 2>&1
}

require_emulator() {
  emulator_healthy || die "emulator not reachable at $ENDPOINT; run infra/local/emulator.sh start"
}

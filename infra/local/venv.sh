#!/usr/bin/env bash
# Create $REPO/.venv and install the pinned local toolchain (idempotent).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REQ="$REPO/infra/local/requirements.txt"
STAMP="$VENV/.requirements.sha256"
want="$(sha256_file "$REQ")"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "venv up to date ($VENV)"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  py="${PYTHON:-python3}"
  command -v "$py" >/dev/null || die "python3 not found (set PYTHON=/path/to/python3.10+)"
  log "creating venv at $VENV"
  "$py" -m venv "$VENV"
fi

log "installing pinned requirements from infra/local/requirements.txt"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" \
  || die "pip install failed"
echo "$want" >"$STAMP"
log "venv ready"

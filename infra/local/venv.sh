#!/usr/bin/env bash
# Create $REPO/.venv and install the pinned local toolchain (idempotent):
# infra/local/requirements.txt, through make_venv (infra/tools.sh).
# Env: PYTHON, the interpreter to make it from (default python3).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

make_venv "$VENV" "$REPO/infra/local/requirements.txt"
log "venv ready ($VENV)"

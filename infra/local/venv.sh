#!/usr/bin/env bash
# Make $REPO/.venv, the local toolchain (emulator, AWS CLI, k6, matplotlib),
# from the `emulator` group of uv.lock (idempotent): `ensure_venv local` of
# infra/tools.sh.
# Env: PYTHON, the interpreter to make it from (default python3).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_venv local
log "venv ready ($VENV)"

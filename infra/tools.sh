# Helpers of the infra scripts (check.sh, package.sh, deploy-aws.sh): pinned
# tools installed on first use. Source it; do not execute it.
# shellcheck shell=bash

REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VENVS="${INFRA_VENVS:-$REPO/.venv-infra}" # INFRA_VENVS: keep them elsewhere
CARGO_DENY_VERSION=0.20.2

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarn:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }
sha256_file() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

# .venv-infra/<name> from infra/requirements-<name>.txt, rebuilt only when
# that file (or the python) changes.
ensure_venv() {
  local name="$1" req="$REPO/infra/requirements-$1.txt" venv="$VENVS/$1"
  local want stamp="$VENVS/$1/.requirements.sha256"
  want="$(sha256_file "$req") $(python3 -c 'import sys; print(sys.version.split()[0])')"
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  log "installing $name tools into ${venv#"$REPO"/} (pinned in ${req#"$REPO"/})"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" \
    || die "pip install of ${req#"$REPO"/} failed"
  echo "$want" >"$stamp"
}

ensure_cargo_deny() {
  if [[ "$(cargo deny --version 2>/dev/null)" == "cargo-deny $CARGO_DENY_VERSION" ]]; then
    return 0
  fi
  log "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked; a few minutes, once)"
  cargo install --locked --quiet "cargo-deny@$CARGO_DENY_VERSION" || die "cargo install cargo-deny failed"
}


# The repository's one script library: logging, the pinned-venv helper, the
# cargo target dir and the Lambda zip writer. Source it; do not execute it.
# It points nothing at AWS or at the emulator (infra/deploy-aws.sh uses it
# with real credentials); infra/local/lib.sh sources it and adds the
# emulator's settings.
# shellcheck shell=bash

REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VENVS="${INFRA_VENVS:-$REPO/.venv-infra}" # INFRA_VENVS: keep them elsewhere
CARGO_DENY_VERSION=0.20.2
UV_VERSION=0.13.8 # installs the pinned requirement files; pip only installs uv

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarn:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

sha256_file() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

# Run "$@" for at most $1 seconds where timeout(1) exists (GNU coreutils);
# elsewhere (macOS) run it as is.
with_timeout() {
  local secs="$1"
  shift
  if command -v timeout >/dev/null; then timeout "$secs" "$@"; else "$@"; fi
}

# uv, pinned, from PyPI into .venv-infra/uv (once). It installs the same
# requirement files as pip would, the same versions, several times faster
# (all six venvs from empty caches: 24 s against pip's 197 s on 2 cores).
# Prints its path; prints nothing where it cannot be had (make_venv then
# uses pip).
uv_bin() {
  local dir="$VENVS/uv"
  if [[ "$("$dir/bin/uv" --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
    log "installing uv $UV_VERSION into ${dir#"$REPO"/}"
    rm -rf -- "$dir"
    { python3 -m venv "$dir" \
      && with_timeout 300 "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "uv==$UV_VERSION"; } >&2 || { warn "could not install uv; using pip"; return 0; }
  fi
  echo "$dir/bin/uv"
}

# make_venv DIR REQUIREMENTS: a venv at DIR holding the pins of REQUIREMENTS,
# made from $PYTHON (default python3), installed by uv (pip where uv is not
# available, or with MAKE_VENV_PIP=1). Nothing is done while DIR's stamp
# matches (the file's sha256 and the Python version). Otherwise the file is
# installed into the existing venv (so a venv in use, e.g. by a running
# emulator, stays usable), or into a new one when DIR is missing or was made
# by another Python. The venv itself comes from `python -m venv`, pip and
# all, as before uv.
make_venv() {
  local dir="$1" req="$2" py="${PYTHON:-python3}" want pyver uv="" stamp="$1/.requirements.sha256"
  command -v "$py" >/dev/null || die "$py not found (set PYTHON=/path/to/python3.10+)"
  pyver="$("$py" -c 'import sys; print(sys.version.split()[0])')"
  want="$(sha256_file "$req") $pyver"
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  if [[ ! -x "$dir/bin/python" ]] \
    || [[ "$("$dir/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" != "$pyver" ]]; then
    log "creating ${dir#"$REPO"/} (Python $pyver)"
    rm -rf -- "$dir"
    "$py" -m venv "$dir" || die "$py -m venv $dir failed"
  fi
  [[ "${MAKE_VENV_PIP:-0}" == 1 ]] || uv="$(uv_bin)"
  log "installing ${req#"$REPO"/} into ${dir#"$REPO"/}${uv:+ (uv)}"
  if [[ -n "$uv" ]]; then
    with_timeout 900 "$uv" pip install --quiet --python "$dir/bin/python" -r "$req"
  else
    with_timeout 900 "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
  fi || die "install of ${req#"$REPO"/} into ${dir#"$REPO"/} failed"
  echo "$want" >"$stamp"
}

# .venv-infra/<name> from infra/requirements-<name>.txt.
ensure_venv() { make_venv "$VENVS/$1" "$REPO/infra/requirements-$1.txt"; }

# Where cargo puts its output (CARGO_TARGET_DIR, .cargo/config, or target/).
cargo_target_dir() {
  (cd "$REPO" && cargo metadata --format-version 1 --no-deps) \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# lambda_zip BINARY ZIP: the Lambda zip of one executable `bootstrap`,
# reproducible (infra/lambda_zip.py pack).
lambda_zip() { python3 "$REPO/infra/lambda_zip.py" pack "$1" "$2"; }

ensure_cargo_deny() {
  if [[ "$(cargo deny --version 2>/dev/null)" == "cargo-deny $CARGO_DENY_VERSION" ]]; then
    return 0
  fi
  log "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked; a few minutes, once)"
  cargo install --locked --quiet "cargo-deny@$CARGO_DENY_VERSION" || die "cargo install cargo-deny failed"
}

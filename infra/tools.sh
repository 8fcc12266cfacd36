# The repository's one script library: logging, the Python environments and
# the cargo target dir. Source it; do not execute it.
# It points nothing at AWS or at the emulator (infra/deploy-aws.sh uses it
# with real credentials); infra/local/lib.sh sources it and adds the
# emulator's settings.
# shellcheck shell=bash

REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VENVS="${INFRA_VENVS:-$REPO/.venv-infra}" # INFRA_VENVS: keep them elsewhere
CARGO_DENY_VERSION=0.20.2
UV_VERSION=0.13.8 # syncs the environments from uv.lock

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarn:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# A step of a long script (tests/run.sh, tests/smoke.sh): its name, the
# seconds since the start and the CPU time used so far (user and system, of
# the processes this script waited for): on a shared machine the CPU time
# shows what a step costs whatever the load.
step() {
  local cpu # CPU seconds of the processes this shell waited for (cutime + cstime)
  cpu="$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f", ($16 + $17) / hz}' "/proc/$$/stat" 2>/dev/null)" || cpu="?"
  printf '\n\033[1;32m### %s\033[0m (%s s; %s CPU s)\n' "$*" "$SECONDS" "$cpu" >&2
}

sha256_file() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

# Run "$@" for at most $1 seconds where timeout(1) exists (GNU coreutils);
# elsewhere (macOS) run it as is.
with_timeout() {
  local secs="$1"
  shift
  if command -v timeout >/dev/null; then timeout "$secs" "$@"; else "$@"; fi
}

# uv, pinned, from PyPI into .venv-infra/uv (once); prints its path. pip only
# installs uv: where PyPI is reachable for the environments' packages it is
# for uv too, so there is no pip fallback.
uv_bin() {
  local dir="$VENVS/uv"
  if [[ "$("$dir/bin/uv" --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
    log "installing uv $UV_VERSION into ${dir#"$REPO"/}"
    rm -rf -- "$dir"
    { python3 -m venv "$dir" \
      && with_timeout 300 "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "uv==$UV_VERSION"; } >&2 || die "could not install uv $UV_VERSION from PyPI"
  fi
  echo "$dir/bin/uv"
}

# The Python environments: every package comes from one pyproject.toml
# (a dependency group per purpose) pinned in uv.lock. One environment per set
# of groups that resolve together (their botocore pins keep them apart):
#   local    .venv                 emulator    ministack, AWS CLI, k6, matplotlib,
#                                              boto3: the local stack, k6/ and the
#                                              bench harness
#   aws      .venv-infra/aws       lint build  cfn-lint, SAM CLI, cargo-lambda, zig
#   checkov  .venv-infra/checkov   checkov
#   peers    bench/python/.venv    peers       the bench's Python peers
venv_dir() {
  case "$1" in
    local) echo "$REPO/.venv" ;;
    aws | checkov) echo "$VENVS/$1" ;;
    peers) echo "$REPO/bench/python/.venv" ;;
    *) die "no Python environment named '$1' (local, aws, checkov, peers)" ;;
  esac
}
venv_groups() {
  case "$1" in
    local) echo emulator ;;
    aws) echo lint build ;;
    checkov | peers) echo "$1" ;;
    *) die "no Python environment named '$1'" ;;
  esac
}

# ensure_venv NAME: environment NAME (above) holding exactly its groups of
# uv.lock (`uv sync --frozen --only-group ...`), made from $PYTHON (default
# python3). Nothing is done while its stamp matches (uv.lock's sha256, the
# groups and the Python version). Otherwise uv syncs into the existing
# environment (so one in use, e.g. by a running emulator, stays usable), or
# makes a new one when it is missing or was made by another Python.
ensure_venv() {
  local name="$1" dir groups py pyver lock want uv g
  dir="$(venv_dir "$name")" || return 1
  groups="$(venv_groups "$name")" || return 1
  # One interpreter start (a pyenv shim alone takes a quarter of a second):
  # its version, uv.lock's sha256 and the interpreter itself, not a wrapper
  # (uv replaces an environment whose interpreter is not the one asked for).
  want="$("${PYTHON:-python3}" -c 'import hashlib, sys
print(sys.version.split()[0], hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest(), sys.executable)' "$REPO/uv.lock")" \
    || die "${PYTHON:-python3} does not run (set PYTHON=/path/to/python3.11+)"
  read -r pyver lock py <<<"$want"
  want="$lock $groups $pyver"
  if [[ -x "$dir/bin/python" && -f "$dir/.uv-sync" && "$(cat "$dir/.uv-sync")" == "$want" ]]; then
    return 0
  fi
  uv="$(uv_bin)"
  local -a only=()
  for g in $groups; do only+=(--only-group "$g"); done
  log "syncing ${dir#"$REPO"/} (Python $pyver; groups ${groups// /, } of uv.lock)"
  UV_PROJECT_ENVIRONMENT="$dir" with_timeout 900 "$uv" sync --quiet --frozen --no-install-project \
    --project "$REPO" --python "$py" --no-python-downloads "${only[@]}" \
    || die "uv sync of ${dir#"$REPO"/} failed"
  echo "$want" >"$dir/.uv-sync"
}

# npm_ci DIR: DIR/node_modules from DIR/package-lock.json (`npm ci`), only
# when it is missing or the lockfile or the Node version changed: a stamp in
# node_modules, which `npm ci` deletes first. Unlike ensure_venv it returns 1
# (after saying why) instead of exiting, so the caller decides whether that
# is fatal. npm_ci_current DIR: whether the stamp matches.
npm_ci_stamp() { echo "$(sha256_file "$1/package-lock.json") node $(node --version)"; }
npm_ci_current() {
  [[ -f "$1/node_modules/.npm-ci.sha256" && "$(cat "$1/node_modules/.npm-ci.sha256")" == "$(npm_ci_stamp "$1")" ]]
}
npm_ci() {
  local dir="$1"
  command -v npm >/dev/null || { warn "npm not found"; return 1; }
  npm_ci_current "$dir" && return 0
  log "installing ${dir#"$REPO"/}/package-lock.json (npm ci)"
  (cd "$dir" && with_timeout 900 npm ci --no-audit --no-fund --loglevel=error) >&2 \
    || { warn "npm ci in ${dir#"$REPO"/} failed"; return 1; }
  npm_ci_stamp "$dir" >"$dir/node_modules/.npm-ci.sha256"
}

# Where cargo puts its output (CARGO_TARGET_DIR, .cargo/config, or target/).
cargo_target_dir() {
  (cd "$REPO" && cargo metadata --format-version 1 --no-deps) \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

ensure_cargo_deny() {
  if [[ "$(cargo deny --version 2>/dev/null)" == "cargo-deny $CARGO_DENY_VERSION" ]]; then
    return 0
  fi
  log "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked; a few minutes, once)"
  cargo install --locked --quiet "cargo-deny@$CARGO_DENY_VERSION" || die "cargo install cargo-deny failed"
}

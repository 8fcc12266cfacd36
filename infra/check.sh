#!/usr/bin/env bash
# Offline checks of what is deployed to AWS (`make check-infra`; tests/run.sh
# runs it before the end-to-end tests, so CI does too). The template steps run
# on infra/template.yaml and on each supported variant of it (infra/variants.py:
# standard/FIFO queue x on-demand/provisioned polling x classic Lambda/Managed
# Instances), rendered with its parameters and conditions resolved, so every
# branch is linted, scanned and has its IAM checked:
#   uv-lock           uv.lock is still the resolution of pyproject.toml
#   cfn-lint          CloudFormation schema and best-practice rules
#   sam-validate      `sam validate --lint` (SAM transform + cfn-lint)
#   checkov           IaC security scan; every skipped check is justified in
#                     the template's Metadata.checkov.skip
#   least-privilege   infra/least_privilege.py: no wildcard IAM, exact action sets
#   cargo-deny        licenses, bans, sources always; advisories when the
#                     RustSec database can be fetched (it lives on GitHub)
# What is deployed is zipped by cargo lambda (infra/deploy-aws.sh,
# infra/package.sh), linked by zig against glibc 2.34 (provided.al2023's):
# one executable bootstrap and the glibc ceiling hold by construction.
# Tools are pinned (uv.lock's groups lint and checkov, CARGO_DENY_VERSION) and
# installed once into .venv-infra/{aws,checkov} and ~/.cargo/bin; later runs
# only check.
#   Args: step names to run a subset (default: all).
#   Env:  REQUIRE_ADVISORIES=1 fails when the advisory database is unreachable
#         instead of skipping that one check (for CI runners with internet).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

source infra/tools.sh
LINT_BIN="$(venv_dir aws)/bin"
TEMPLATE="${TEMPLATE:-infra/template.yaml}" # another template, e.g. to see a check fail
VARIANTS_DIR="$REPO/.local/infra-variants"

# No AWS account, no network: SAM CLI must neither phone home nor find real
# credentials; checkov must not download guidelines from its vendor.
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL

# Each step returns non-zero on failure. They run as `if step`, where bash
# ignores `set -e`, so every command that can fail says `|| return 1`.
# The template and its rendered variants, rendered once per run.
TEMPLATES=()
templates() {
  [[ ${#TEMPLATES[@]} -eq 0 ]] || return 0
  ensure_venv aws || return 1
  local out
  out="$("$LINT_BIN/python" infra/variants.py render "$TEMPLATE" "$VARIANTS_DIR")" || return 1
  mapfile -t TEMPLATES < <(printf '%s\n' "$TEMPLATE" "$out")
  log "${#TEMPLATES[@]} templates: ${TEMPLATE} and its variants in ${VARIANTS_DIR#"$REPO"/}/"
}

step_cfn_lint() {
  templates || return 1
  # One process for all of them.
  "$LINT_BIN/cfn-lint" "${TEMPLATES[@]}" || return 1
  printf '  ok %s\n' "${TEMPLATES[@]##*/}"
}

step_sam_validate() {
  templates || return 1
  # sam validate takes one template per process: two at a time.
  printf '%s\0' "${TEMPLATES[@]}" | xargs -0 -P 2 -I{} sh -c \
    'out="$("$1" validate --lint --template-file "$2" 2>&1)" && echo "  ok ${2##*/}" || { printf "%s\n" "$out" >&2; echo "  FAILED $2" >&2; exit 1; }' \
    _ "$LINT_BIN/sam" {} || return 1
}

step_checkov() {
  ensure_venv checkov || return 1
  templates || return 1
  # --skip-download: offline; no vendor guidelines or custom policies. One
  # process scans every template.
  "$(venv_dir checkov)/bin/checkov" --quiet --compact --skip-download \
    --framework cloudformation secrets --file "${TEMPLATES[@]}" || return 1
  # Print the skips with their reasons, so a skip is read, not just counted.
  "$LINT_BIN/python" - "$TEMPLATE" <<'PY'
import sys
from samcli.yamlhelper import yaml_parse
t = yaml_parse(open(sys.argv[1]).read())
for lid, r in t["Resources"].items():
    for s in (r.get("Metadata") or {}).get("checkov", {}).get("skip", []):
        if not str(s.get("comment", "")).strip():
            sys.exit(f"{lid}: checkov skip {s.get('id')} has no justification")
        print(f"  skipped {s['id']:<12} {lid}: {s['comment'][:110]}{'...' if len(s['comment']) > 110 else ''}")
PY
}

step_least_privilege() {
  templates || return 1
  # (samtranslator prints "unpublished metrics" notes on exit: noise.)
  "$LINT_BIN/python" infra/least_privilege.py "${TEMPLATES[@]}" 2> >(grep -v "unpublished metrics" >&2) || return 1
}

# Every environment is synced from uv.lock as it is (--frozen), so the lock
# must still be what pyproject.toml's pins resolve to. Static: no network.
step_uv_lock() {
  local uv
  uv="$(uv_bin)" || return 1
  "$uv" lock --check --offline --project "$REPO" \
    || { warn "uv.lock does not match pyproject.toml; run: ${uv#"$REPO"/} lock"; return 1; }
}

ADVISORIES_NOTE=""
step_cargo_deny() {
  ensure_cargo_deny || return 1
  cargo deny --locked check --hide-inclusion-graph licenses bans sources || return 1
  # The RustSec advisory database is a git repository on GitHub. Fetch it
  # (cargo-deny does, on `check advisories`); where that fails, say so and
  # skip only this check: it is not a pass.
  local out
  if out="$(cargo deny --locked check --hide-inclusion-graph advisories 2>&1)"; then
    printf '%s\n' "$out" | tail -n 3
    return 0
  fi
  if grep -q "failed to fetch advisory database" <<<"$out"; then
    ADVISORIES_NOTE="advisories NOT checked: the RustSec database (github.com/RustSec/advisory-db) could not be fetched"
    printf '%s\n' "$out" | grep -m1 -E "fatal|ERROR" >&2 || true
    if [[ "${REQUIRE_ADVISORIES:-0}" == 1 ]]; then
      warn "$ADVISORIES_NOTE (REQUIRE_ADVISORIES=1)"
      return 1
    fi
    warn "$ADVISORIES_NOTE; skipped (licenses, bans and sources passed)"
    return 0
  fi
  printf '%s\n' "$out" >&2
  return 1
}

all_steps=(uv-lock cfn-lint sam-validate checkov least-privilege cargo-deny)
steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=("${all_steps[@]}")

results=()
failed=0
for s in "${steps[@]}"; do
  fn="step_${s//-/_}"
  declare -F "$fn" >/dev/null || die "unknown step $s (steps: ${all_steps[*]})"
  printf '\n\033[1;36m--- %s\033[0m\n' "$s" >&2
  start=$(date +%s.%N)
  if "$fn"; then status=ok; else status=FAILED; failed=1; fi
  secs=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
  results+=("$(printf '%-16s %-7s %6ss' "$s" "$status" "$secs")")
done

printf '\n\033[1minfra checks\033[0m\n' >&2
printf '  %s\n' "${results[@]}" >&2
[[ -z "$ADVISORIES_NOTE" ]] || printf '  note: %s\n' "$ADVISORIES_NOTE" >&2
[[ "$failed" == 0 ]] || die "infra checks failed"

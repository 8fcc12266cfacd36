#!/usr/bin/env bash
# The checks a crate needs before it can be published, run by `make test`
# (tests/run.sh) after the workspace's fmt, clippy and tests:
#   1. doc tests (nextest does not run them) and `cargo doc -D warnings`;
#   2. `rust-version` is true: equal to the highest `rust-version` declared
#      in the crate's locked dependency tree (only one toolchain can be
#      installed here, so it cannot be built with that version itself);
#   3. `cargo package`, which builds the packaged crate on its own;
#   4. the README's first example, built as a new user would: a project
#      outside the workspace with a path dependency on the crate;
#   5. cargo-semver-checks against the crate at the previous commit, when
#      the tool is installed (semver.sh, `make semver`, which CI runs).
# Env: CARGO_TARGET_DIR (shared with the workspace build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
crate_dir="$PWD"
step() { printf '\n\033[1;32m### lambda-batch: %s\033[0m\n' "$*" >&2; }

step "doc tests and docs"
cargo test --locked -p lambda-batch --doc
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps -p lambda-batch

step "rust-version against the dependency tree"
python3 - <<'PY'
import json, subprocess, sys, tomllib
declared = tomllib.load(open("Cargo.toml", "rb"))["package"]["rust-version"]
meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--locked", "--format-version", "1"]))
versions = {(p["name"], p["version"]): p.get("rust_version") for p in meta["packages"]}
tree = subprocess.check_output(
    ["cargo", "tree", "--locked", "-p", "lambda-batch", "-e", "normal",
     "--prefix", "none", "--format", "{p}"], text=True)
def key(v):
    return (tuple(int(x) for x in v.split(".")) + (0, 0))[:3]
highest, who = "0", "nothing"
for line in tree.splitlines():
    parts = line.split()
    if len(parts) < 2 or parts[0] == "lambda-batch":
        continue
    rv = versions.get((parts[0], parts[1].lstrip("v")))
    if rv and key(rv) > key(highest):
        highest, who = rv, f"{parts[0]} {parts[1]}"
print(f"rust-version {declared}; highest in the dependency tree: {highest} ({who})")
if key(declared) != key(highest):
    sys.exit(f"lambda-batch/Cargo.toml says rust-version {declared}, but {who} needs {highest}: "
             "make them equal")
PY

step "cargo package"
cargo package --locked -p lambda-batch --allow-dirty

step "the README's first example, from a project outside the workspace"
stranger="$(mktemp -d)"
trap 'rm -rf "$stranger"' EXIT
mkdir -p "$stranger/src"
# The first ```toml block is the user's [dependencies]; the first rust block
# is main.rs.
python3 - "$crate_dir/README.md" "$stranger" "$crate_dir" <<'PY'
import re, sys
readme, out, crate = sys.argv[1:4]
text = open(readme).read()
deps = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
code = re.search(r"```rust[^\n]*\n(.*?)```", text, re.S).group(1)
deps = re.sub(r'^lambda-batch = .*$', f'lambda-batch = {{ path = "{crate}" }}', deps, flags=re.M)
open(f"{out}/Cargo.toml", "w").write(
    '[package]\nname = "stranger"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n'
    '[workspace]\n\n' + deps)
open(f"{out}/src/main.rs", "w").write(code)
PY
cat "$stranger/Cargo.toml" >&2
# Its own lock, resolved as a new user's would be; compiled artifacts shared.
(cd "$stranger" && cargo build --quiet)
echo "built the README's first example outside the workspace" >&2

step "semver check against the previous commit"
# Only when the tool is installed (make semver installs it; CI runs that).
if PATH="$HOME/.cache/sqs-pipeline/tools/bin:$PATH" command -v cargo-semver-checks >/dev/null; then
  bash semver.sh
else
  echo "cargo-semver-checks not installed: skipped here (make semver installs and runs it)" >&2
fi

#!/usr/bin/env bash
# Install the Node peer's pinned packages (package-lock.json, `npm ci`), only
# when node_modules is missing or the lockfile or the Node version changed.
#   bench/node/install.sh                  install, or say what is missing (exit 1)
#   bench/node/install.sh --missing-debs   print the Debian packages still needed, and exit
# aws-lambda-ric has no prebuilt binary in any version: `npm ci` compiles
# curl and aws-lambda-cpp from source and then its addon with node-gyp, so it
# needs cmake, make, a C++ compiler, autoconf, automake, libtool, python3 and
# Node's own headers. This script installs none of them (CI's .ci/run does,
# with apt-get): it names what is missing. On failure the reason is also
# written to bench/node/.install-error, which the bench shows when it skips
# the peer.
set -euo pipefail

NODE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../infra/tools.sh
source "$NODE_DIR/../../infra/tools.sh"
ERROR_FILE="$NODE_DIR/.install-error"
NODE_MAJOR_MIN=20

# command:Debian package, for what aws-lambda-ric's install scripts call.
TOOLS=(cmake:cmake make:make g++:g++ autoreconf:autoconf automake:automake libtoolize:libtool python3:python3)

missing_debs() {
  local pair out=()
  for pair in "${TOOLS[@]}"; do
    command -v "${pair%%:*}" >/dev/null || out+=("${pair#*:}")
  done
  echo "${out[*]}"
}

if [[ "${1:-}" == --missing-debs ]]; then
  missing_debs
  exit 0
fi

fail() {
  printf '%s\n' "$*" >"$ERROR_FILE"
  warn "$*"
  exit 1
}

command -v node >/dev/null && command -v npm >/dev/null \
  || fail "node and npm not found: the Node peer needs Node.js $NODE_MAJOR_MIN+ with npm (Debian/Ubuntu: NodeSource's nodejs package)"
major="$(node -p 'process.versions.node.split(".")[0]')"
((major >= NODE_MAJOR_MIN)) || fail "Node.js $(node --version) is too old: the Node peer needs $NODE_MAJOR_MIN+"

# Nothing to do while the stamp matches; checked before the build tools, so
# a machine that has the packages need not keep the compilers.
if npm_ci_current "$NODE_DIR"; then
  rm -f "$ERROR_FILE"
  exit 0
fi

debs="$(missing_debs)"
[[ -z "$debs" ]] || fail "aws-lambda-ric compiles a native addon on install and needs: $debs (install with: apt-get install -y $debs)"
# node-gyp builds against Node's headers; without a local copy it would
# download them, which this project does not do.
nodedir="$(npm config get nodedir 2>/dev/null || true)"
if [[ -z "$nodedir" || "$nodedir" == undefined || "$nodedir" == null ]]; then
  nodedir="$(cd "$(dirname "$(command -v node)")/.." && pwd)"
  export npm_config_nodedir="$nodedir"
fi
[[ -f "$nodedir/include/node/node_api.h" ]] \
  || fail "Node's headers not found at $nodedir/include/node (node-gyp needs them to build aws-lambda-ric; they come with the nodejs package, or set npm_config_nodedir)"

npm_ci "$NODE_DIR" || fail "npm ci in bench/node failed (see the output above)"
[[ -f "$NODE_DIR/node_modules/aws-lambda-ric/dist/rapid-client.node" ]] \
  || fail "npm ci ran but aws-lambda-ric's native addon (rapid-client.node) was not built"
rm -f "$ERROR_FILE"

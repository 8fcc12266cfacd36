#!/usr/bin/env bash
# Stop what up.sh started: the emulator, and with it every Lambda process it
# spawned (all state is in memory and goes too). Build outputs stay.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"
"$HERE/emulator.sh" stop
rm -f "$LOCAL_DIR"/outputs*.env

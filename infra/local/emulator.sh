#!/usr/bin/env bash
# Run the ministack emulator in the background, bound to 127.0.0.1: the one
# launcher, for the local stack (make up, tests) and for the bench
# (bench/harness/emulator.py runs it with its own port, files and services).
#   emulator.sh start|stop|status
# Env: MINISTACK_PORT (default 4566), EMULATOR_START_TIMEOUT (seconds, default 60),
#      MINISTACK_LOG_LEVEL (INFO), EMULATOR_PID_FILE / EMULATOR_LOG
#      (.local/ministack.pid / .log), EMULATOR_PYTHON (an interpreter with
#      ministack; default .venv's), EMULATOR_SERVICES (ministack's SERVICES:
#      all when unset), EMULATOR_REUSE (1: an emulator already answering on
#      the port is used; 0: that is an error).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PID_FILE="${EMULATOR_PID_FILE:-$LOCAL_DIR/ministack.pid}"
LOG_FILE="${EMULATOR_LOG:-$LOCAL_DIR/ministack.log}"
START_TIMEOUT="${EMULATOR_START_TIMEOUT:-60}"
PY="${EMULATOR_PYTHON:-$VENV/bin/python}"

running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  # Alive and really ours: a stale pid file may name a recycled pid.
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
    && ps -p "$pid" -o args= 2>/dev/null | grep -q ministack \
    && { echo "$pid"; return 0; }
  return 1
}

start() {
  if [[ -z "${EMULATOR_PYTHON:-}" ]]; then
    require_venv
  else
    "$PY" -c 'import ministack' 2>/dev/null || die "no ministack in $PY (EMULATOR_PYTHON)"
  fi
  mkdir -p "$(dirname "$PID_FILE")" "$(dirname "$LOG_FILE")"
  if pid="$(running_pid)"; then
    if emulator_healthy; then
      log "emulator already running (pid $pid) at $ENDPOINT"
      return 0
    fi
    die "emulator pid $pid is alive but $ENDPOINT is not healthy; see $LOG_FILE or run: $0 stop"
  fi
  if emulator_healthy; then
    [[ "${EMULATOR_REUSE:-1}" == 1 ]] \
      || die "something already answers on 127.0.0.1:$MINISTACK_PORT; pick another port"
    # A ministack answers there (its health route is its own) that another
    # checkout or shell started: use it, and leave stopping it to its owner.
    log "reusing the emulator already running at $ENDPOINT (started elsewhere; stop it there)"
    return 0
  fi

  log "starting ministack on $ENDPOINT (log: ${LOG_FILE#"$REPO"/})"
  # Lambda processes inherit the emulator's whole environment, so start it from
  # a small, known one: test credentials, the endpoint, and nothing of the
  # caller's real AWS configuration. RUST_LOG/RUST_BACKTRACE pass through for
  # debugging the functions.
  local -a envs=(
    "PATH=$PATH" "HOME=${HOME:-/tmp}" "LANG=${LANG:-C.UTF-8}" "TMPDIR=${TMPDIR:-/tmp}"
    # MINISTACK_HOST is the host name put into queue URLs; 127.0.0.1 keeps
    # them reachable where "localhost" resolves to ::1 first.
    "GATEWAY_PORT=$MINISTACK_PORT" "BIND_HOST=127.0.0.1" "MINISTACK_HOST=127.0.0.1"
    "LAMBDA_EXECUTOR=local"
    "MINISTACK_REGION=$AWS_REGION" "LOG_LEVEL=${MINISTACK_LOG_LEVEL:-INFO}"
    "AWS_ENDPOINT_URL=$ENDPOINT" "AWS_REGION=$AWS_REGION" "AWS_DEFAULT_REGION=$AWS_REGION"
    "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
    "AWS_EC2_METADATA_DISABLED=true"
    # Nothing of a run survives it (ministack's default, said out loud).
    "S3_PERSIST=0" "PERSIST_STATE=0"
  )
  [[ -n "${EMULATOR_SERVICES:-}" ]] && envs+=("SERVICES=$EMULATOR_SERVICES")
  [[ -n "${RUST_LOG:-}" ]] && envs+=("RUST_LOG=$RUST_LOG")
  [[ -n "${RUST_BACKTRACE:-}" ]] && envs+=("RUST_BACKTRACE=$RUST_BACKTRACE")

  # A new session (setsid(2), done by Python so it also works on macOS) makes
  # the emulator a process-group leader: stop takes the Lambda worker
  # processes it spawned down with it.
  env -i "${envs[@]}" "$PY" -c \
    'import os, sys; os.setsid(); os.execv(sys.executable, [sys.executable, "-m", "ministack"])' \
    >"$LOG_FILE" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  local pid
  pid="$(cat "$PID_FILE")"

  local deadline=$((SECONDS + START_TIMEOUT))
  until emulator_healthy; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE"
      die "ministack exited during start-up (log above)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$LOG_FILE" >&2 || true
      die "ministack not healthy after ${START_TIMEOUT}s (pid $pid still running; $0 stop)"
    fi
    sleep 0.5
  done
  log "emulator healthy (pid $pid)"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "emulator not running"
    return 0
  fi
  log "stopping emulator (pid $pid)"
  # The process group we created with setsid: the emulator and its Lambda workers.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    warn "emulator did not stop after 15s; sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  # Stray workers of the same group (they outlive the parent on SIGTERM).
  kill -TERM -- "-$pid" 2>/dev/null || true
  rm -f "$PID_FILE"
  log "emulator stopped"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    if emulator_healthy; then
      echo "emulator: running (pid $pid) at $ENDPOINT"
    else
      echo "emulator: pid $pid alive but $ENDPOINT not healthy (see ${LOG_FILE#"$REPO"/})"
      return 1
    fi
  else
    echo "emulator: stopped"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

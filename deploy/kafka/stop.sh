#!/usr/bin/env bash
# Stop the broker started by start.sh: SIGTERM (controlled shutdown), wait up
# to KAFKA_STOP_TIMEOUT seconds (default 30), then SIGKILL. Removes the pid
# file. Exits 0 when nothing is running. The data dir and broker.log are kept
# for post-mortems; the next start.sh wipes the data dir.
#
# Env: KAFKA_RUN_DIR (default deploy/kafka/.run), KAFKA_STOP_TIMEOUT (default 30)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_DIR="${KAFKA_RUN_DIR:-$HERE/.run}"
if [[ -d "$RUN_DIR" ]]; then RUN_DIR="$(cd "$RUN_DIR" && pwd)"; fi
PID_FILE="$RUN_DIR/kafka.pid"
TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

log() { echo "stop.sh: $*"; }

if [[ ! -f "$PID_FILE" ]]; then
  log "no pid file in $RUN_DIR - broker not running"
  exit 0
fi
pid="$(cat "$PID_FILE" 2>/dev/null || true)"

# Only signal the process if it still is our broker (the pid may have been
# recycled since start.sh wrote it).
is_our_broker() {
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka\.Kafka $RUN_DIR/server.properties"
}

if ! is_our_broker; then
  log "broker (pid ${pid:-?}) is not running - removing stale pid file"
  rm -f "$PID_FILE"
  exit 0
fi

t0=$SECONDS
kill -TERM "$pid" 2>/dev/null || true
deadline=$(( SECONDS + TIMEOUT ))
while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
  sleep 0.2
done
if kill -0 "$pid" 2>/dev/null; then
  log "broker (pid $pid) still running after ${TIMEOUT}s - sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$PID_FILE"
  log "broker killed"
  exit 0
fi
rm -f "$PID_FILE"
log "broker (pid $pid) stopped in $((SECONDS - t0))s"

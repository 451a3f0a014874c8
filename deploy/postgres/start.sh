#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on loopback for the console's store tests and for development,
# from Debian's packages (`apt-get install postgresql`; its binaries are in /usr/lib/postgresql/<ver>/bin).
# Every start makes an EMPTY cluster in the run dir; the server refuses to run as root, so as root it runs
# as the `postgres` user (the package creates it).
#
# Env (all optional):
#   PG_PORT          port                                (default 15432)
#   PG_RUN_DIR       data dir, socket, log               (default deploy/postgres/.run)
#   PG_BIN           the server's binaries               (default the newest /usr/lib/postgresql/*/bin)
#
# On success prints the store URL (postgresql+psycopg://…, database `livewatch`) and exits 0, leaving
# the server running (stop it with stop.sh). On failure exits 1 with the server's log.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT="${PG_PORT:-15432}"
RUN_DIR="${PG_RUN_DIR:-$HERE/.run}"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
if [[ -z "$PG_BIN" || ! -x "$PG_BIN/initdb" ]]; then
  echo "deploy/postgres/start.sh: no PostgreSQL server binaries; install Debian's package: apt-get install postgresql" >&2
  exit 1
fi

as_owner() {  # run a server command as the data dir's owner: postgres when we are root
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

"$HERE/stop.sh" >/dev/null 2>&1 || true
rm -rf "$RUN_DIR/data"
mkdir -p "$RUN_DIR"
[[ "$(id -u)" == 0 ]] && chown postgres: "$RUN_DIR"
# trust on loopback only: a throw-away server for tests, reachable from this machine alone
as_owner "$PG_BIN/initdb" -D "$RUN_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$RUN_DIR/initdb.log" 2>&1 \
  || { cat "$RUN_DIR/initdb.log" >&2; exit 1; }
if ! as_owner "$PG_BIN/pg_ctl" -D "$RUN_DIR/data" -l "$RUN_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $RUN_DIR -c fsync=off" start >/dev/null; then
  echo "deploy/postgres/start.sh: the server did not start:" >&2
  tail -30 "$RUN_DIR/server.log" >&2
  exit 1
fi
as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE DATABASE livewatch" >/dev/null
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/livewatch"

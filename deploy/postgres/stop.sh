#!/usr/bin/env bash
# Stop the server start.sh started (same PG_RUN_DIR); its data stays until the next start.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_DIR="${PG_RUN_DIR:-$HERE/.run}"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
[[ -f "$RUN_DIR/data/postmaster.pid" ]] || exit 0
if [[ "$(id -u)" == 0 ]]; then
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$RUN_DIR/data" -m fast -w stop
else
  "$PG_BIN/pg_ctl" -D "$RUN_DIR/data" -m fast -w stop
fi

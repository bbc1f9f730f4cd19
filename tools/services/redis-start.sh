#!/usr/bin/env bash
# Start a throw-away redis-server on 127.0.0.1 with its state under DIR (no persistence by default).
#
#   tools/services/redis-start.sh DIR
#
# Env: REDIS_PORT (16379), REDIS_PERSIST=1 (enable appendonly + RDB snapshots in DIR), REDIS_BIN (path to
#      redis-server), SERVICE_FOREGROUND=1 (stay in the foreground as the server's parent until it stops),
#      SERVICE_START_ATTEMPTS (readiness polls x 0.1 s, default 150).
# Prints KEY=VALUE lines to export on stdout; diagnostics go to stderr.
# Exit: 0 ready, 1 failed to start (log tail printed), 2 usage, 3 redis-server not installed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

if [ $# -ne 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi

BIN=${REDIS_BIN:-$(command -v redis-server 2>/dev/null || echo /usr/bin/redis-server)}
if [ ! -x "$BIN" ]; then
  {
    echo "error: redis-server is not installed (no executable at '$BIN')."
    echo "Install it with:"
    echo "  apt-get update && apt-get install -y redis-server"
    echo "(prefix with sudo when not root)"
  } >&2
  exit 3
fi

REDIS_PORT=${REDIS_PORT:-16379}
svc_port REDIS_PORT "$REDIS_PORT"
ATTEMPTS=${SERVICE_START_ATTEMPTS:-150}
case "$ATTEMPTS" in ''|*[!0-9]*) svc_die "SERVICE_START_ATTEMPTS='$ATTEMPTS' is not a positive integer" ;; esac

D=$(svc_abs_dir "$1")
PIDFILE=$D/redis.pid
if [ -f "$PIDFILE" ] && svc_alive "$(cat "$PIDFILE")"; then
  svc_die "redis already runs from $D (pid $(cat "$PIDFILE")); stop it with tools/services/redis-stop.sh $D"
fi
if svc_port_open "$REDIS_PORT"; then svc_die "port $REDIS_PORT on 127.0.0.1 is already in use"; fi

if [ "${REDIS_PERSIST:-0}" = 1 ]; then
  PERSIST=(--save '60 1' --appendonly yes)
else
  PERSIST=(--save '' --appendonly no)
fi

LOG=$D/redis.log
: >>"$LOG"
"$BIN" --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$D" --daemonize no --logfile "$LOG" \
  --protected-mode yes "${PERSIST[@]}" </dev/null >>"$D/redis.out" 2>&1 &
PID=$!
echo "$PID" >"$PIDFILE"

if ! svc_wait_ports "$PID" "$LOG" "$ATTEMPTS" "$REDIS_PORT"; then
  tail -n 10 "$D/redis.out" >&2 2>/dev/null || true
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -f "$PIDFILE"
  exit 1
fi

cat <<ENV
REDIS_HOST=127.0.0.1
REDIS_PORT=$REDIS_PORT
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
REDIS_DIR=$D
REDIS_PID=$PID
ENV

if [ "${SERVICE_FOREGROUND:-0}" = 1 ]; then
  svc_supervise "$PID" "$PIDFILE"
fi

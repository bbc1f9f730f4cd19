#!/usr/bin/env bash
# Stop every service started under DIR: DIR itself and its sub-directories (e.g. DIR/dovecot, DIR/redis)
# that hold a dovecot.pid or redis.pid.
#   tools/services/stop-all.sh DIR
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
[ -d "$1" ] || { echo "stop-all: $1 does not exist; nothing to stop" >&2; exit 0; }
rc=0
while IFS= read -r -d '' pidfile; do
  dir=$(dirname "$pidfile")
  case "$(basename "$pidfile")" in
    dovecot.pid) "$HERE/dovecot-stop.sh" "$dir" || rc=1 ;;
    redis.pid) "$HERE/redis-stop.sh" "$dir" || rc=1 ;;
  esac
done < <(find "$1" -maxdepth 2 \( -name dovecot.pid -o -name redis.pid \) -print0)
exit "$rc"

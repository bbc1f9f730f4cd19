#!/usr/bin/env bash
# Stop the redis-server started by redis-start.sh DIR (SIGTERM via DIR/redis.pid, SIGKILL after 10 s).
#   tools/services/redis-stop.sh DIR
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
[ -d "$1" ] || { echo "redis: $1 does not exist; nothing to stop" >&2; exit 0; }
D=$(cd "$1" && pwd -P)
svc_stop_pid "$D/redis.pid" redis

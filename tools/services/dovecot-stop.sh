#!/usr/bin/env bash
# Stop the Dovecot started by dovecot-start.sh DIR (SIGTERM via DIR/dovecot.pid, SIGKILL after 10 s).
#   tools/services/dovecot-stop.sh DIR
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
[ -d "$1" ] || { echo "dovecot: $1 does not exist; nothing to stop" >&2; exit 0; }
D=$(cd "$1" && pwd -P)
svc_stop_pid "$D/dovecot.pid" dovecot
# The master stops its children, but make sure no service process of this instance outlives it.
INSTANCE=$(sed -n 's/^instance_name = //p' "$D/dovecot.conf" 2>/dev/null || true)
[ -n "$INSTANCE" ] && svc_stop_matching "dovecot-$INSTANCE/"
exit 0

# Shared helpers for the service scripts. Sourced, not executed.
# shellcheck shell=bash

svc_die() { echo "error: $*" >&2; exit 1; }

# svc_abs_dir DIR -> prints an absolute path (creating DIR). Refuses paths Dovecot/Redis configs cannot quote.
svc_abs_dir() {
  local d=$1
  [ -n "$d" ] || svc_die "missing DIR argument"
  mkdir -p "$d" || svc_die "cannot create directory '$d'"
  d=$(cd "$d" && pwd -P)
  case "$d" in
    *[!A-Za-z0-9._/+-]*) svc_die "DIR '$d' contains characters other than [A-Za-z0-9._/+-]; choose a simpler path" ;;
  esac
  printf '%s\n' "$d"
}

# svc_port NAME VALUE -> validates a TCP port number (1-65535)
svc_port() {
  local name=$1 value=$2
  case "$value" in
    ''|*[!0-9]*) svc_die "$name='$value' is not a port number (expected an integer 1-65535)" ;;
  esac
  if [ "$value" -lt 1 ] || [ "$value" -gt 65535 ]; then
    svc_die "$name='$value' is out of range (expected 1-65535)"
  fi
}

# svc_port_open PORT -> 0 when something accepts TCP connections on 127.0.0.1:PORT
svc_port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# svc_alive PID -> 0 when PID is a live (non-zombie) process
svc_alive() {
  local pid=$1 state
  [ -n "$pid" ] || return 1
  if [ -r "/proc/$pid/stat" ]; then
    # field 3 of /proc/PID/stat is the state; the command name (field 2) may contain spaces, so cut after ')'
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
  else
    kill -0 "$pid" 2>/dev/null
  fi
}

# svc_cmd_matches PID WORD -> 0 when the process command line mentions WORD (guards against PID reuse)
svc_cmd_matches() {
  local pid=$1 word=$2
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$word"
  else
    return 0
  fi
}

# svc_wait_ports PID LOG ATTEMPTS PORT... -> waits (bounded by ATTEMPTS x 0.1 s) until every PORT accepts
# connections; fails early if PID dies.
svc_wait_ports() {
  local pid=$1 log=$2 attempts=$3 i p ok
  shift 3
  for ((i = 0; i < attempts; i++)); do
    if ! svc_alive "$pid"; then
      echo "error: the server process ($pid) exited during startup. Last log lines ($log):" >&2
      tail -n 30 "$log" >&2 2>/dev/null || true
      return 1
    fi
    ok=1
    for p in "$@"; do
      svc_port_open "$p" || { ok=0; break; }
    done
    [ "$ok" = 1 ] && return 0
    sleep 0.1
  done
  echo "error: ports $* did not accept connections after $attempts attempts. Last log lines ($log):" >&2
  tail -n 30 "$log" >&2 2>/dev/null || true
  return 1
}

# svc_stop_pid PIDFILE WORD -> TERM the process, wait for it to go, KILL as a last resort, remove the pidfile
svc_stop_pid() {
  local pidfile=$1 word=$2 pid i
  if [ ! -f "$pidfile" ]; then
    echo "$word: not running (no $pidfile)" >&2
    return 0
  fi
  pid=$(cat "$pidfile")
  if svc_alive "$pid" && svc_cmd_matches "$pid" "$word"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      svc_alive "$pid" || break
      sleep 0.1
    done
    if svc_alive "$pid"; then
      echo "$word: pid $pid ignored SIGTERM for 10 s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        svc_alive "$pid" || break
        sleep 0.1
      done
    fi
    echo "$word: stopped (pid $pid)" >&2
  else
    echo "$word: pid $pid from $pidfile is not running" >&2
  fi
  rm -f "$pidfile"
}

# svc_pids_matching WORD -> live PIDs whose command line starts with WORD
svc_pids_matching() {
  local word=$1 f pid cmd
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    cmd=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
    case "$cmd" in "$word"*) svc_alive "$pid" && echo "$pid" ;; esac
  done
  return 0
}

# svc_stop_matching WORD -> TERM (then KILL) every live process whose command line starts with WORD
svc_stop_matching() {
  local word=$1 pids i
  [ -d /proc ] || return 0
  for ((i = 0; i < 50; i++)); do
    pids=$(svc_pids_matching "$word")
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    if [ "$i" -lt 30 ]; then kill -TERM $pids 2>/dev/null || true; else kill -KILL $pids 2>/dev/null || true; fi
    sleep 0.1
  done
  echo "warning: processes still running after stop: $(svc_pids_matching "$word" | tr '\n' ' ')" >&2
  return 1
}

# Stays as the server's parent (SERVICE_FOREGROUND=1) so it is reaped when it stops — PID 1 may not
# reap orphans. Forwards TERM/INT/HUP, removes the pidfile, exits with the server's status.
svc_supervise() {
  local pid=$1 pidfile=$2 rc=0
  trap 'kill -TERM "'"$pid"'" 2>/dev/null || true' TERM INT HUP
  while svc_alive "$pid"; do
    wait "$pid" && rc=0 || rc=$?
  done
  rm -f "$pidfile"
  exit "$rc"
}

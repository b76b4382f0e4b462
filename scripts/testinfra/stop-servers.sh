#!/usr/bin/env bash
# scripts/testinfra/stop-servers.sh ENV_FILE
#
# Stops the servers that start-servers.sh started for ENV_FILE, and nothing
# else. Each pid file in $TESTINFRA_RUN_DIR/pids names a process group that
# start-servers.sh created; it is signalled only while that process is alive,
# still leads its own group and still has the run directory on its command
# line, so a recycled pid is never touched. Nothing is killed by name.
# SIGTERM first, SIGKILL for a group still there after 10 s. Then the data,
# logs and keys are removed, unless TESTINFRA_KEEP_RUN_DIR=1. Running it twice
# is harmless.
set -uo pipefail

log() { printf '[testinfra %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[[ $# -eq 1 ]] || { echo "usage: $0 ENV_FILE" >&2; exit 2; }
ENV_FILE=$1
[[ -f "$ENV_FILE" ]] || { log "no env file $ENV_FILE: nothing to stop"; exit 0; }

RUN=$(sed -n "s/^TESTINFRA_RUN_DIR='\(.*\)'$/\1/p" "$ENV_FILE" | head -1)
[[ -n "$RUN" && -d "$RUN/pids" ]] || { log "nothing to stop for $ENV_FILE (already stopped?)"; exit 0; }

alive() { # running and not a zombie
  local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n "$st" && "$st" != Z ]]
}
ours() { # alive, leads its group, run directory on its command line
  local pid=$1 pgid
  alive "$pid" || return 1
  pgid=$(awk '{print $5}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ "$pgid" == "$pid" ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$RUN"
}

pids=() names=()
for f in "$RUN"/pids/*.pid; do
  [[ -e "$f" ]] || continue
  name=$(basename "$f" .pid); pid=$(cat "$f")
  if [[ "$pid" =~ ^[0-9]+$ ]] && ours "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null
    pids+=("$pid"); names+=("$name")
  else
    log "$name (pid $pid) is not running"
  fi
  rm -f "$f"
done

for _ in $(seq 1 100); do   # up to 10 s for the groups to exit
  left=0
  for pid in "${pids[@]}"; do alive "$pid" && left=1; done
  [[ $left -eq 0 ]] && break
  sleep 0.1
done
for i in "${!pids[@]}"; do
  if alive "${pids[$i]}"; then
    log "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM; sending SIGKILL to its group"
    kill -KILL -- "-${pids[$i]}" 2>/dev/null
  fi
done
[[ ${#names[@]} -gt 0 ]] && log "stopped ${names[*]}"

if [[ "${TESTINFRA_KEEP_RUN_DIR:-0}" != 1 ]]; then
  # Only what start-servers.sh creates; the directory goes only if that empties it.
  rm -rf -- "$RUN/pids" "$RUN/logs" "$RUN/data" "$RUN/sftp" "$RUN/webdav" "$RUN/toxiproxy"
  rmdir -- "$RUN" 2>/dev/null || true
  log "removed the data and logs in $RUN"
fi
exit 0

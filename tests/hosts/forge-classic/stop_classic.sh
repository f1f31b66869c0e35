#!/usr/bin/env bash
# Stop a Forge Classic server started by start_classic.sh, by the PID in its PID file (never by name).
# usage: stop_classic.sh [PORT]   (default: every run/classic-*.pid)
set -uo pipefail
HARNESS="${CLASSIC_HARNESS:-$HOME/forge-classic-harness}"
RUN_DIR="${RUN_DIR:-$HARNESS/run}"
if [ -n "${1:-}" ]; then files=("$RUN_DIR/classic-$1.pid"); else files=("$RUN_DIR"/classic-*.pid); fi
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "no PID file $f"; continue; }
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then echo "PID $pid ignored SIGTERM; sending SIGKILL"; kill -KILL "$pid"; fi
    echo "stopped PID $pid ($f)"
  else
    echo "PID $pid from $f is not running"
  fi
  rm -f "$f"
done

#!/usr/bin/env bash
# Stop a Forge Neo server started by start_neo.sh, by the PID in its PID file (never by name).
# usage: stop_neo.sh [PORT]   (default: every run/neo-*.pid)
set -uo pipefail
HARNESS="${NEO_HARNESS:-$HOME/forge-neo-harness}"
source "$(dirname "${BASH_SOURCE[0]}")/../harness-lib.sh"
stop_servers "${RUN_DIR:-$HARNESS/run}" neo "${1:-}"

#!/usr/bin/env bash
# Stop a Forge Classic server started by start_classic.sh, by the PID in its PID file (never by name).
# usage: stop_classic.sh [PORT]   (default: every run/classic-*.pid)
set -uo pipefail
HARNESS="${CLASSIC_HARNESS:-$HOME/forge-classic-harness}"
source "$(dirname "${BASH_SOURCE[0]}")/../harness-lib.sh"
stop_servers "${RUN_DIR:-$HARNESS/run}" classic "${1:-}"

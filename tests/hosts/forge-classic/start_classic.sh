#!/usr/bin/env bash
# Start Forge Classic (harness build, CPU, API only unless --ui) in the background on 127.0.0.1, write a PID file +
# log, wait until the API answers and the checkpoint is loaded (Classic loads it eagerly at start-up).
#
# usage: start_classic.sh [--ui] [extra Classic args...]
# env: EXTENSION (a checkout to symlink into forge/extensions/ before start), EXTENSION_NAME (link name, default the
#      checkout's folder name), PORT (default 7950), CKPT (default forge/models/Stable-diffusion/tiny-forge-sd15.safetensors),
#      CLASSIC_HARNESS (build dir, default ~/forge-classic-harness), RUN_DIR (pid/log dir, default <harness>/run),
#      START_TIMEOUT (s, default 300)
set -euo pipefail
HARNESS="${CLASSIC_HARNESS:-$HOME/forge-classic-harness}"
FORGE="${FORGE_DIR:-$HARNESS/forge}"
VENV="${VENV_DIR:-$HARNESS/venv}"
RUN_DIR="${RUN_DIR:-$HARNESS/run}"
CKPT="${CKPT:-$FORGE/models/Stable-diffusion/tiny-forge-sd15.safetensors}"
START_TIMEOUT="${START_TIMEOUT:-300}"
PORT="${PORT:-7950}"

MODE=api
if [ "${1:-}" = "--ui" ]; then MODE=ui; shift; fi

source "$(dirname "${BASH_SOURCE[0]}")/../harness-lib.sh"
prepare_run "$FORGE" "$RUN_DIR" classic "$PORT"

# everything offline; Hugging Face caches inside the harness (Classic sets HF_HOME etc. only if unset)
offline_env "$HARNESS"

# no --do-not-download-clip: Classic's parser rejects it
ARGS=(--always-cpu --all-in-fp32
      --skip-prepare-environment --skip-python-version-check --skip-torch-cuda-test --skip-version-check
      --no-download-sd-model
      --server-name 127.0.0.1 --port "$PORT" --ckpt "$CKPT" --api)
[ "$MODE" = api ] && ARGS+=(--nowebui)
ARGS+=("$@")

cd "$FORGE"
echo "starting: $VENV/bin/python launch.py ${ARGS[*]}" > "$LOG"
setsid nohup "$VENV/bin/python" launch.py "${ARGS[@]}" >> "$LOG" 2>&1 < /dev/null &
PID=$!
echo "$PID" > "$PIDFILE"
echo "PID $PID, log $LOG"

t0=$(date +%s)
die_if_gone() {
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "Classic exited during startup; last log lines:" >&2; tail -40 "$LOG" >&2; rm -f "$PIDFILE"; exit 1
  fi
  if [ $(( $(date +%s) - t0 )) -ge "$START_TIMEOUT" ]; then
    echo "timed out after ${START_TIMEOUT}s; Classic still running as PID $PID; log: $LOG" >&2; exit 1
  fi
}
# 1. the API answers (options carry the --ckpt checkpoint as sd_model_checkpoint)
until out="$(curl -sf --max-time 5 "http://127.0.0.1:$PORT/sdapi/v1/options" 2>/dev/null)" \
      && grep -q '"sd_model_checkpoint": *"[^"]' <<<"$out"; do
  die_if_gone; sleep 1
done
echo "API up after $(( $(date +%s) - t0 ))s"
# 2. the model is loaded (eagerly, at start-up: modules/initialize.py initialize_rest)
until grep -q "Model loaded in" "$LOG"; do die_if_gone; sleep 1; done
echo "Classic ready on http://127.0.0.1:$PORT after $(( $(date +%s) - t0 ))s"

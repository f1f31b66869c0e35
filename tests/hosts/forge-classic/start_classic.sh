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

echo "starting: $VENV/bin/python launch.py ${ARGS[*]}" > "$LOG"
launch Classic "$VENV" "$FORGE" "${ARGS[@]}"
# the model is loaded (eagerly, at start-up: modules/initialize.py initialize_rest)
ready_after "Model loaded in"

#!/usr/bin/env bash
# Start Forge Neo (harness build, CPU, API only unless --ui) in the background on 127.0.0.1, write a PID file + log,
# wait until the API answers, then load the checkpoint with one tiny warm-up txt2img and wait for "Model loaded in"
# (Neo loads the checkpoint lazily, on the first generation; no API call only loads it).
#
# Neo has no --ckpt (and argparse's prefix matching would read `--ckpt X` as `--ckpt-dirs X`): the start-up model is
# the settings file's "sd_model_checkpoint". This script writes it into the settings file the server is given:
#   - without --ui-settings-file: <run>/neo-PORT.config.json, made fresh from forge/config.json (the harness
#     settings of setup.sh) at every start, so servers on different ports never share (or overwrite) one file;
#   - with --ui-settings-file FILE among the arguments: FILE itself (sd_model_checkpoint set, the harness settings
#     added where FILE lacks them; Neo reads no other settings file then).
# A CKPT outside forge/models/Stable-diffusion is served through --ckpt-dirs <its folder>.
#
# usage: start_neo.sh [--ui] [extra Neo args...]   (--ui: Gradio UI + API instead of API only)
# env: PORT (default 7960), CKPT (a file name in forge/models/Stable-diffusion or a path to a checkpoint; default
#      tiny-forge-sd15.safetensors), EXTENSION (a checkout to symlink into forge/extensions/ before start),
#      EXTENSION_NAME (the link's name, default the checkout's folder name), NEO_HARNESS (build dir, default
#      ~/forge-neo-harness), RUN_DIR (pid/log/settings dir, default <harness>/run), START_TIMEOUT (s, default 300),
#      WARMUP=0 (skip the warm-up generation: the model then loads on your first request)
set -euo pipefail
HARNESS="${NEO_HARNESS:-$HOME/forge-neo-harness}"
FORGE="${FORGE_DIR:-$HARNESS/forge}"
VENV="${VENV_DIR:-$HARNESS/venv}"
RUN_DIR="${RUN_DIR:-$HARNESS/run}"
CKPT="${CKPT:-tiny-forge-sd15.safetensors}"
START_TIMEOUT="${START_TIMEOUT:-300}"
PORT="${PORT:-7960}"

MODE=api
if [ "${1:-}" = "--ui" ]; then MODE=ui; shift; fi

source "$(dirname "${BASH_SOURCE[0]}")/../harness-lib.sh"
prepare_run "$FORGE" "$RUN_DIR" neo "$PORT"

# ---- the checkpoint, as Neo names it (modules/sd_models.py CheckpointInfo: path relative to its folder) ----
MODELS="$FORGE/models/Stable-diffusion"
EXTRA=()
case "$CKPT" in
  */*) ckpt_abs="$(cd "$(dirname "$CKPT")" && pwd)/$(basename "$CKPT")" ;;
  *)   ckpt_abs="$MODELS/$CKPT" ;;
esac
[ -f "$ckpt_abs" ] || { echo "no checkpoint $ckpt_abs" >&2; exit 1; }
models_abs="$(cd "$MODELS" && pwd)"
if [ "${ckpt_abs#"$models_abs"/}" != "$ckpt_abs" ]; then
  CKPT_NAME="${ckpt_abs#"$models_abs"/}"
else
  CKPT_NAME="$(basename "$ckpt_abs")"
  EXTRA+=(--ckpt-dirs "$(dirname "$ckpt_abs")")
fi

# ---- the settings file ----
SETTINGS=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --ui-settings-file) SETTINGS="${args[i+1]:-}" ;;
    --ui-settings-file=*) SETTINGS="${args[i]#*=}" ;;
  esac
done
if [ -z "$SETTINGS" ]; then
  SETTINGS="$RUN_DIR/neo-$PORT.config.json"
  rm -f "$SETTINGS"
  EXTRA+=(--ui-settings-file "$SETTINGS")
fi
"$VENV/bin/python" - "$SETTINGS" "$FORGE/config.json" "$CKPT_NAME" <<'PY'
import json, os, sys
path, base, ckpt = sys.argv[1:4]
d = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
harness = json.load(open(base)) if os.path.exists(base) else {}
for k, v in harness.items():
    if k != "sd_model_checkpoint":
        d.setdefault(k, v)
d["sd_model_checkpoint"] = ckpt
json.dump(d, open(path, "w"), indent=4)
PY

# everything offline; Hugging Face caches inside the harness (Neo sets HF_HOME etc. only if unset)
offline_env "$HARNESS"

# Neo's CPU switches are --cpu and --force-fp32 (backend/args.py); it rejects --always-cpu, --all-in-fp32,
# --no-download-sd-model and --do-not-download-clip, and has no --ckpt (see above)
ARGS=(--cpu --force-fp32
      --skip-prepare-environment --skip-python-version-check --skip-torch-cuda-test --skip-version-check
      --server-name 127.0.0.1 --port "$PORT" --api)
[ "$MODE" = api ] && ARGS+=(--nowebui)
ARGS+=("${EXTRA[@]}" "$@")

echo "starting: $VENV/bin/python launch.py ${ARGS[*]}" > "$LOG"
echo "checkpoint: $CKPT_NAME (settings file $SETTINGS)" >> "$LOG"
launch Neo "$VENV" "$FORGE" "${ARGS[@]}"
echo "checkpoint $CKPT_NAME"
# the model is loaded: one 64x64, 1-step txt2img
if [ "${WARMUP:-1}" != 0 ]; then
  curl -sf --max-time "$START_TIMEOUT" -o /dev/null -H 'Content-Type: application/json' \
       -d '{"prompt": "warm-up", "seed": 1, "steps": 1, "width": 64, "height": 64, "sampler_name": "Euler"}' \
       "http://127.0.0.1:$PORT/sdapi/v1/txt2img" || { die_if_gone; echo "warm-up request failed; log: $LOG" >&2; exit 1; }
  ready_after "Model loaded in"
else
  echo "Neo ready on http://127.0.0.1:$PORT after $(( $(date +%s) - T0 ))s (model not loaded yet: WARMUP=0)"
fi

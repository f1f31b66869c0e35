# Shell functions the Forge Classic and Forge Neo harness scripts share (sourced, not run).

# link_or_copy SRC DEST: a hard link (same filesystem) or a copy, replaced when it differs
link_or_copy() {
  mkdir -p "$(dirname "$2")"
  if [ ! -f "$2" ] || ! cmp -s "$1" "$2"; then
    rm -f "$2"; ln "$1" "$2" 2>/dev/null || cp "$1" "$2"
  fi
}

# forge2_models FORGE2_HARNESS: the Forge 2 harness's tiny SD1 and its ControlNet, into forge/models (cwd = harness)
forge2_models() {
  link_or_copy "$1/forge/models/Stable-diffusion/tiny-forge-sd15.safetensors" \
               forge/models/Stable-diffusion/tiny-forge-sd15.safetensors
  link_or_copy "$1/forge/models/ControlNet/control_tiny-forge-sd15.safetensors" \
               forge/models/ControlNet/control_tiny-forge-sd15.safetensors
}

# tiny_esrgan WEBUI_BIN: forge/models/ESRGAN/tiny-esrgan-4x.pth, unless ESRGAN=0. The generator imports spandrel
# 0.3's module layout (spandrel.architectures.ESRGAN.arch), which Classic's and Neo's spandrel 0.4 lack: it runs
# with the A1111 harness venv (ESRGAN_PY overrides)
tiny_esrgan() {
  [ "${ESRGAN:-1}" = 1 ] || return 0
  local esr=forge/models/ESRGAN/tiny-esrgan-4x.pth
  if [ ! -f "$esr" ] || [ "$1/make_tiny_esrgan.py" -nt "$esr" ]; then
    mkdir -p forge/models/ESRGAN
    "${ESRGAN_PY:-$HOME/webui-harness/venv/bin/python}" "$1/make_tiny_esrgan.py" "$esr"
  fi
}

# prepare_run FORGE RUN_DIR NAME PORT: link $EXTENSION into FORGE/extensions (as $EXTENSION_NAME), set PIDFILE and
# LOG (RUN_DIR/NAME-PORT.{pid,log}); fail if that server runs already
prepare_run() {
  mkdir -p "$2"
  if [ -n "${EXTENSION:-}" ]; then
    local ext name
    ext="$(cd "$EXTENSION" && pwd)"
    name="${EXTENSION_NAME:-$(basename "$ext")}"
    ln -sfn "$ext" "$1/extensions/$name"
    echo "extension: $1/extensions/$name -> $ext"
  fi
  PIDFILE="$2/$3-$4.pid"
  LOG="$2/$3-$4.log"
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "already running: PID $(cat "$PIDFILE") (port $4); stop it with stop_$3.sh $4" >&2
    exit 1
  fi
}

# offline_env HARNESS: no network, Hugging Face caches inside the harness (the hosts set HF_HOME only if unset)
offline_env() {
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 DIFFUSERS_OFFLINE=1
  export HF_HOME="${HF_HOME:-$1/hf-home}"
  export GRADIO_ANALYTICS_ENABLED=False DO_NOT_TRACK=1 DISABLE_TELEMETRY=1 HF_HUB_DISABLE_TELEMETRY=1
  export PYTHONUNBUFFERED=1
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
}

# stop_servers RUN_DIR NAME [PORT]: stop the servers of RUN_DIR/NAME-PORT.pid (every NAME-*.pid without PORT) by
# their PID (never by name): SIGTERM, then SIGKILL after 20 s
stop_servers() {
  local files f pid
  if [ -n "${3:-}" ]; then files=("$1/$2-$3.pid"); else files=("$1/$2"-*.pid); fi
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
}

# tiny_sdxl_models FORGE2_HARNESS FORGE2_BIN NAME...: the standard-depth tiny SDXL checkpoints NAME (tiny-std-sdxl;
# tiny-std-sdxl-vpred, the same network marked v-prediction + zero terminal SNR) and their ControlNet, into
# forge/models, unless SDXL=0. The makers (tests/hosts/tiny_models) reuse the Forge 2 harness's makers and Forge 2's
# classes, so they run with its venv (SDXL_PY overrides) and tree; a file is remade only when a maker is newer.
stale() {  # OUT MAKER...: OUT is missing or older than one of its makers (or inputs)
  local o="$1"; shift
  [ -f "$o" ] || return 0
  for m in "$@"; do [ "$m" -nt "$o" ] && return 0; done
  return 1
}
tiny_sdxl_models() {
  [ "${SDXL:-1}" = 1 ] || return 0
  local f2="$1" f2bin="$2" name out extra tm py
  shift 2
  tm="$(cd "$(dirname "${BASH_SOURCE[0]}")/tiny_models" && pwd)"
  py="${SDXL_PY:-$f2/venv/bin/python}"
  for name in "$@"; do
    out="forge/models/Stable-diffusion/$name.safetensors"
    if stale "$out" "$tm/make_tiny_sdxl.py" "$f2bin/make_forge_tiny_sdxl.py"; then
      extra=(); [ "$name" = tiny-std-sdxl-vpred ] && extra=(--v-pred-ztsnr)
      mkdir -p "$(dirname "$out")"
      "$py" "$tm/make_tiny_sdxl.py" --forge "$f2/forge" --maker "$f2bin/make_forge_tiny_sdxl.py" \
        --out "$out.tmp.safetensors" "${extra[@]}"
      mv "$out.tmp.safetensors" "$out"
    fi
  done
  out=forge/models/ControlNet/control_tiny-std-sdxl.safetensors
  if stale "$out" "$tm/make_tiny_sdxl_controlnet.py" "$tm/make_tiny_sdxl.py" "$f2bin/make_forge_tiny_controlnet.py"; then
    mkdir -p "$(dirname "$out")"
    "$py" "$tm/make_tiny_sdxl_controlnet.py" --forge "$f2/forge" --maker "$f2bin/make_forge_tiny_controlnet.py" \
      --out "$out.tmp.safetensors"
    mv "$out.tmp.safetensors" "$out"
  fi
}

# launch TITLE VENV FORGE ARGS...: start FORGE/launch.py in the background (PID file, log: prepare_run's), then wait
# until the API answers with a checkpoint selected; `ready_after PATTERN` then waits for a log line
launch() {
  local venv="$2" forge="$3"
  TITLE="$1"; shift 3
  # the redirections are the subshell's own: nothing it leaves running holds the caller's stdout (a caller that reads
  # this script's output to the end would otherwise wait for the server to exit); exec makes $! the server's PID
  (cd "$forge" && exec setsid nohup "$venv/bin/python" launch.py "$@") >> "$LOG" 2>&1 < /dev/null &
  PID=$!
  echo "$PID" > "$PIDFILE"
  echo "PID $PID, log $LOG"
  T0=$(date +%s)
  until out="$(curl -sf --max-time 5 "http://127.0.0.1:$PORT/sdapi/v1/options" 2>/dev/null)" \
        && grep -q '"sd_model_checkpoint": *"[^"]' <<<"$out"; do
    die_if_gone; sleep 1
  done
  echo "API up after $(( $(date +%s) - T0 ))s"
}

# die_if_gone: fail the start when the server exited, or START_TIMEOUT passed
die_if_gone() {
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "$TITLE exited during startup; last log lines:" >&2; tail -40 "$LOG" >&2; rm -f "$PIDFILE"; exit 1
  fi
  if [ $(( $(date +%s) - T0 )) -ge "$START_TIMEOUT" ]; then
    echo "timed out after ${START_TIMEOUT}s; $TITLE still running as PID $PID; log: $LOG" >&2; exit 1
  fi
}

# ready_after PATTERN: wait for PATTERN in the log, then say the server is ready
ready_after() {
  until grep -q "$1" "$LOG"; do die_if_gone; sleep 1; done
  echo "$TITLE ready on http://127.0.0.1:$PORT after $(( $(date +%s) - T0 ))s"
}

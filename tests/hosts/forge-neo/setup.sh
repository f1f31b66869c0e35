#!/usr/bin/env bash
# Build the Forge Neo test harness (exo101/sd-webui-forge-neo-v3 @ 5692d2d1: exo101's "Neo v3.5" repackaging of
# Neo release 2.26, tree under webui/) from the MIRROR snapshot (see README.md). Idempotent: an existing tree / venv /
# models are kept; the tiny models are regenerated only when their maker is newer.
# Layout (HARNESS = $NEO_HARNESS, default ~/forge-neo-harness):
#   forge/        webui/ of the mirror, without the bundled third-party extensions in webui/extensions/ and without
#                 exo101's stray pip logs (webui/0.22.0, 1.14.0, 2.31.0, 9.0.0); extensions-builtin/ kept.
#                 Neo's launcher git-clones nothing (modules/launch_utils.py prepare_environment), so no repositories/.
#   venv/         Python 3.11 venv (torch 2.14.1 + torchvision 0.29.1 from local disk, rest from PyPI)
#   forge/models/Stable-diffusion/tiny-forge-sd15.safetensors       hard link/copy of the Forge 2 harness file
#   forge/models/ControlNet/control_tiny-forge-sd15.safetensors      hard link/copy of the Forge 2 harness file
#   forge/models/ESRGAN/tiny-esrgan-4x.pth                           made by the A1111 harness's make_tiny_esrgan.py
#   forge/models/Stable-diffusion/tiny-std-sdxl.safetensors          } made by ../tiny_models/make_tiny_sdxl.py and
#   forge/models/Stable-diffusion/tiny-std-sdxl-vpred.safetensors    } make_tiny_sdxl_controlnet.py (Forge 2 venv),
#   forge/models/ControlNet/control_tiny-std-sdxl.safetensors        } only when those makers exist
#   forge/models/Stable-diffusion/tiny-mugen.safetensors             the tiny SDXL made a Mugen (flow, Flux.2 VAE):
#                                                                    ../tiny_models/make_tiny_mugen.py, a family
#                                                                    DemoFusion refuses
#   forge/config.json   harness settings merged in (section 4 below)
# env: MIRROR (default /work/.mirror), LOCK=0 (Neo's requirements.txt + harness changes instead of the lock),
#      FORGE2_HARNESS (source of the tiny SD1 + ControlNet, default ~/forge-harness),
#      WEBUI_BIN (A1111 harness scripts, default ../shared/webui-harness/bin), ESRGAN=0 to skip the upscaler,
#      FORGE2_BIN (Forge 2 harness scripts, default ../shared/forge-harness/bin: the shared tiny-model makers),
#      ESRGAN_PY (python for make_tiny_esrgan.py, default ~/webui-harness/venv/bin/python),
#      SDXL=0 to skip the tiny SDXL files, SDXL_PY (python for the SDXL makers, default $FORGE2_HARNESS/venv/bin/python)
set -euo pipefail
BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HARNESS="${NEO_HARNESS:-$HOME/forge-neo-harness}"
MIRROR="${MIRROR:-/work/.mirror}"
FORGE2_HARNESS="${FORGE2_HARNESS:-$HOME/forge-harness}"
SHARED="$(cd "$BIN/../../../.." && pwd)/shared"        # the workplace's shared/ beside this checkout
WEBUI_BIN="${WEBUI_BIN:-$SHARED/webui-harness/bin}"
FORGE2_BIN="${FORGE2_BIN:-$SHARED/forge-harness/bin}"
mkdir -p "$HARNESS" && cd "$HARNESS"
stamp() { echo "[setup $(date -u +%H:%M:%S)] $*"; }

# ---- 1. work tree -------------------------------------------------------------------------------------
stamp "tree"
NEO_GIT="$MIRROR/exo101+sd-webui-forge-neo-v3/repo"
NEO_COMMIT=5692d2d1e6c293faf5486f7cb18c27c9a3faa758
git --git-dir="$NEO_GIT" cat-file -e "$NEO_COMMIT^{commit}" || { echo "commit $NEO_COMMIT not in $NEO_GIT" >&2; exit 1; }
if [ ! -f forge/launch.py ]; then
  # Sub-folder export: webui/ -> forge/, leaving out webui/extensions/ (30 bundled third-party extensions, some of
  # whose blobs are absent from the snapshot) and four pip logs. git archive takes pathspecs; it still prints
  # "error: invalid object ..." for an absent blob inside the excluded folder but exports everything else, so the
  # file count is checked against ls-tree below instead of trusting its messages.
  EXCL=(':(exclude)webui/extensions' ':(exclude)webui/0.22.0' ':(exclude)webui/1.14.0'
        ':(exclude)webui/2.31.0' ':(exclude)webui/9.0.0')
  rm -rf forge.partial && mkdir forge.partial
  git --git-dir="$NEO_GIT" archive --format=tar "$NEO_COMMIT" -- webui "${EXCL[@]}" 2>/dev/null \
    | tar -x --strip-components=1 -C forge.partial
  want=$(git --git-dir="$NEO_GIT" ls-tree -r -z --name-only "$NEO_COMMIT" -- webui | tr "\\0" "\\n" \
         | grep -c -v -E '^webui/(extensions/|0\.22\.0$|1\.14\.0$|2\.31\.0$|9\.0\.0$)')
  got=$(find forge.partial -type f -o -type l | wc -l)
  [ "$want" = "$got" ] || { echo "export incomplete: $got of $want files" >&2; exit 1; }
  mkdir -p forge.partial/extensions
  git --git-dir="$NEO_GIT" show "$NEO_COMMIT:webui/extensions/Put Extensions here.txt" \
    > "forge.partial/extensions/Put Extensions here.txt"
  mv forge.partial forge
  echo "exported webui/ of $NEO_COMMIT -> forge ($got files + extensions/Put Extensions here.txt)"
fi
# models/ is gitignored in Neo; modules_forge/shared.py creates ControlNet, ControlNetPreprocessor, diffusers itself
mkdir -p forge/models/{Stable-diffusion,ControlNet,ESRGAN,Lora,VAE,text_encoder}

# ---- 2. venv ------------------------------------------------------------------------------------------
stamp "venv"
[ -x venv/bin/python ] || python3.11 -m venv venv
# torch/torchvision first; on these machines pip takes both from local disk
venv/bin/pip install torch==2.14.1 torchvision==0.29.1
if [ "${LOCK:-1}" = 1 ] && [ -f "$BIN/requirements-neo.lock.txt" ]; then
  # --no-deps: the lock is a complete `pip freeze`, and it holds the one declared conflict Neo itself installs
  # (gradio 4.40.0 wants pillow<11, Neo pins Pillow 12.2.0), which pip's resolver would refuse in one command
  venv/bin/pip install --no-deps -r "$BIN/requirements-neo.lock.txt"
else
  # What Neo's launcher does (modules/launch_utils.py prepare_environment), in its order, with the harness changes
  # (README, "Pins"): requirements.txt without `torch` (installed above) and with setuptools 80.9.0 instead of
  # 69.5.1 (torch 2.14.1 requires setuptools>=77.0.3); 1. gradio separately (it is not in requirements.txt), but
  # constrained by those pins except Pillow, so that it does not first pull newer httpx/huggingface-hub/fastapi
  # (and their new dependencies, left behind as orphans) that step 2 downgrades again; 2. the requirements.
  grep -v -i '^torch$' forge/requirements.txt | sed 's/^setuptools==69\.5\.1$/setuptools==80.9.0/' > requirements-neo.txt
  grep -v -i '^pillow==' requirements-neo.txt > constraints-neo-gradio.txt
  venv/bin/pip install gradio==4.40.0 gradio_rangeslider==0.0.8 -c constraints-neo-gradio.txt
  venv/bin/pip install -r requirements-neo.txt
fi
# pip check must report nothing but the conflict every Neo install has (launcher: gradio first, then Pillow 12.2.0)
check="$(venv/bin/pip check 2>&1 || true)"
echo "$check"
if grep -v -E '^gradio 4\.40\.0 has requirement pillow<11\.0,>=8\.0, but you have pillow 12\.2\.0\.$|^No broken requirements found\.$' <<<"$check" | grep -q .; then
  echo "pip check reports more than the known gradio/Pillow conflict" >&2; exit 1
fi

# ---- 3. models ----------------------------------------------------------------------------------------
stamp "models"
source "$BIN/../harness-lib.sh"
forge2_models "$FORGE2_HARNESS"
tiny_sdxl_models "$FORGE2_HARNESS" "$FORGE2_BIN" tiny-std-sdxl tiny-std-sdxl-vpred
SDXL_FILE=forge/models/Stable-diffusion/tiny-std-sdxl.safetensors
MUGEN=forge/models/Stable-diffusion/tiny-mugen.safetensors
MUGEN_MAKER="$BIN/../tiny_models/make_tiny_mugen.py"
if [ -f "$SDXL_FILE" ] && stale "$MUGEN" "$MUGEN_MAKER" "$SDXL_FILE"; then
  venv/bin/python "$MUGEN_MAKER" --sdxl "$SDXL_FILE" --out "$MUGEN.tmp.safetensors"
  mv "$MUGEN.tmp.safetensors" "$MUGEN"
fi
tiny_esrgan "$WEBUI_BIN"

# ---- 4. settings ------------------------------------------------------------------------------------------
# - VERSION_UID "PY313": without it modules/launch_utils.py verify_version() prints "You are updating from an old
#   version..." and waits for Enter (EOFError under nohup) whenever the settings file exists without that key;
# - show_progress_type "RGB": Neo's default, set explicitly (Approx NN and TAESD download their decoders);
# - forge_model_mode "local": exo101's setting; "api" sends every generation to a remote provider.
stamp "config"
venv/bin/python - forge/config.json <<'PY'
import json, os, sys
p = sys.argv[1]
d = json.load(open(p)) if os.path.exists(p) else {}
d.update({
    "VERSION_UID": "PY313",
    "show_progress_type": "RGB",
    "forge_model_mode": "local",
})
json.dump(d, open(p, "w"), indent=4)
PY
mkdir -p run out hf-home
stamp "harness ready in $HARNESS: start with $BIN/start_neo.sh (API on 127.0.0.1:7960)"

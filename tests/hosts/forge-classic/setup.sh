#!/usr/bin/env bash
# Build the Forge Classic (Haoming02/sd-webui-forge-classic @ 1f95d717, branch classic) test harness from the
# MIRROR snapshots (see README.md). Idempotent: existing trees / venv / models are kept.
# Layout (HARNESS = $CLASSIC_HARNESS, default ~/forge-classic-harness):
#   forge/        Classic work tree (+ repositories/ at the commits its launcher pins)
#   venv/         Python 3.11 venv (torch 2.14.1 + torchvision 0.29.1 from local disk, rest from PyPI)
#   forge/models/Stable-diffusion/tiny-forge-sd15.safetensors       hard link/copy of the Forge 2 harness file
#   forge/models/ControlNet/control_tiny-forge-sd15.safetensors      hard link/copy of the Forge 2 harness file
#   forge/models/ESRGAN/tiny-esrgan-4x.pth                           made by the A1111 harness's make_tiny_esrgan.py
#   forge/models/Stable-diffusion/tiny-std-sdxl.safetensors          standard-depth tiny SDXL (2.0 GiB), made by
#   forge/models/ControlNet/control_tiny-std-sdxl.safetensors        ../tiny_models/make_tiny_sdxl{,_controlnet}.py
#                                                                    with the Forge 2 harness venv (SDXL=0 skips both;
#                                                                    SDXL_VPRED=1 adds tiny-std-sdxl-vpred)
#   forge/config.json   {"show_progress_type": "Approx cheap"} merged in (no TAESD download for live previews; the
#                       cheap approximation has SDXL coefficients, so SDXL needs no VAE-approx file either)
# The Forge 2 harness's own tiny SDXL (KOALA-700M depth list) is not recognised by Classic, hence tiny-std-sdxl.
# env: MIRROR (default /work/.mirror), LOCK=0 (Classic's requirements.txt + harness changes instead of the lock),
#      FORGE2_HARNESS (source of the tiny SD1 + ControlNet, default ~/forge-harness),
#      FORGE2_BIN (Forge 2 harness scripts, default ../shared/forge-harness/bin beside the checkout),
#      WEBUI_BIN (A1111 harness scripts, default ../shared/webui-harness/bin), ESRGAN=0 to skip the upscaler,
#      ESRGAN_PY (python for make_tiny_esrgan.py, default ~/webui-harness/venv/bin/python),
#      SDXL=0 to skip the tiny SDXL + its ControlNet, SDXL_VPRED=1 to also make the v-prediction/ztsnr variant,
#      SDXL_PY (python for the tiny SDXL makers, default $FORGE2_HARNESS/venv/bin/python)
set -euo pipefail
BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HARNESS="${CLASSIC_HARNESS:-$HOME/forge-classic-harness}"
MIRROR="${MIRROR:-/work/.mirror}"
FORGE2_HARNESS="${FORGE2_HARNESS:-$HOME/forge-harness}"
SHARED="$(cd "$BIN/../../../.." && pwd)/shared"        # the workplace's shared/ beside this checkout
FORGE2_BIN="${FORGE2_BIN:-$SHARED/forge-harness/bin}"
WEBUI_BIN="${WEBUI_BIN:-$SHARED/webui-harness/bin}"
mkdir -p "$HARNESS" && cd "$HARNESS"
stamp() { echo "[setup $(date -u +%H:%M:%S)] $*"; }

# ---- 1. work trees ----------------------------------------------------------------------------------
stamp "trees"
CL_GIT="$MIRROR/Haoming02+sd-webui-forge-classic/repo"
CL_COMMIT=1f95d7170189cf93952aca122c1ee2f306a07e4c
git --git-dir="$CL_GIT" cat-file -e "$CL_COMMIT^{commit}" || { echo "commit $CL_COMMIT not in $CL_GIT" >&2; exit 1; }
[ -f forge/launch.py ] || "$FORGE2_BIN/export_tree.sh" "$CL_GIT" "$CL_COMMIT" forge
# what modules/launch_utils.py:prepare_environment() would git-clone (no k-diffusion, no BLIP in Classic)
while read -r mirror commit dir; do
  [ -d "forge/repositories/$dir" ] || "$FORGE2_BIN/export_tree.sh" "$MIRROR/$mirror/repo" "$commit" "forge/repositories/$dir"
done <<'LIST'
AUTOMATIC1111+stable-diffusion-webui-assets 6f7db241d2f8ba7457bac5ca9753331f0c266917 stable-diffusion-webui-assets
Stability-AI+stablediffusion cf1d67a6fd5ea1aa600c4df58e5b47da45f6bdbf stable-diffusion-stability-ai
Stability-AI+generative-models 45c443b316737a4ab6e40413d7794a7f5657c19f generative-models
LIST

# ---- 2. venv ------------------------------------------------------------------------------------------
stamp "venv"
[ -x venv/bin/python ] || python3.11 -m venv venv
# torch/torchvision first; on these machines pip takes both from local disk
venv/bin/pip install torch==2.14.1 torchvision==0.29.1
if [ "${LOCK:-1}" = 1 ] && [ -f "$BIN/requirements-classic.lock.txt" ]; then
  venv/bin/pip install -r "$BIN/requirements-classic.lock.txt"
else
  # Classic's own pins with the harness changes (README, "Pins"): torch installed above; setuptools 80.9.0
  # (torch 2.14.1 needs >=77.0.3, and pytorch_lightning 1.9.4 imports pkg_resources); joblib for soft-inpainting
  grep -v -i '^torch$' forge/requirements.txt > requirements-classic.txt
  printf '%s\n' setuptools==80.9.0 joblib==1.6.0 >> requirements-classic.txt
  venv/bin/pip install -r requirements-classic.txt
fi
venv/bin/pip check

# ---- 3. models ----------------------------------------------------------------------------------------
stamp "models"
source "$BIN/../harness-lib.sh"
forge2_models "$FORGE2_HARNESS"
xl=(tiny-std-sdxl); [ "${SDXL_VPRED:-0}" = 1 ] && xl+=(tiny-std-sdxl-vpred)
tiny_sdxl_models "$FORGE2_HARNESS" "$FORGE2_BIN" "${xl[@]}"
tiny_esrgan "$WEBUI_BIN"

# ---- 4. settings: no TAESD live-preview download (Classic's default preview type) ---------------------
stamp "config"
venv/bin/python - forge/config.json <<'PY'
import json, os, sys
p = sys.argv[1]
d = json.load(open(p)) if os.path.exists(p) else {}
d["show_progress_type"] = "Approx cheap"
json.dump(d, open(p, "w"), indent=4)
PY
mkdir -p run out
stamp "harness ready in $HARNESS: start with $BIN/start_classic.sh (API on 127.0.0.1:7950)"

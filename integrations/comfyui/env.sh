#!/usr/bin/env bash
# Build the Python environment that ComfyUI's tests run in (CI and developers run this same script).
# ComfyUI needs torchvision, which is not served for the main environment's pinned torch, so it gets its own venv.
# Usage: integrations/comfyui/env.sh [VENV_DIR]   (default: .venv-comfy in the repository root)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-$root/.venv-comfy}"
python -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# ComfyUI's own requirements (the CPU subset that imports SD/SDXL); torchaudio is not served for this torch and
# ComfyUI only warns without it.
"$venv/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1 \
    torchsde einops transformers tokenizers sentencepiece safetensors aiohttp yarl pyyaml scipy tqdm psutil \
    alembic SQLAlchemy av pydantic pydantic-settings \
    comfyui-frontend-package==1.27.10
# paircustom itself plus what its tests use.
"$venv/bin/python" -m pip install -q -e "$root[test]"
echo "$venv"

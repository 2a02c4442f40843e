#!/usr/bin/env bash
# Create .venv and install afbench with its test, Ray, ONNX and export extras. torch==2.13.0 first: on
# machines with its local CPU wheel it comes from there instead of pulling CUDA builds.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
.venv/bin/python -c "import torch" 2>/dev/null || pip_install "torch==2.13.0" || pip_install "torch>=2.2,<3"
pip_install -e ".[test,ray,onnx,export]"
# timm for the real-model swap tests (`pytest -m slow`): without its torchvision requirement, which would pull
# another torch build; tests/torchvision_stand_in.py stands in for the names timm imports.
pip_install --no-deps "timm>=1.0,<2" && pip_install huggingface_hub safetensors pyyaml
.venv/bin/python -c "import afbench, torch, ray, onnxruntime, tensorboard, mlflow" # fail here, not in the tests, if the install did not work

#!/usr/bin/env bash
# Create .venv and install afbench with its test, Ray, ONNX and export extras; idempotent (a second run
# only checks). torch==2.13.0 first: on machines with its local CPU wheel it comes from there instead of
# pulling CUDA builds. AFBENCH_TIMM=1 also installs timm for the real-model swap tests (`pytest -m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '[setup %3ds] %s\n' "$((SECONDS - started))" "$*"; }

# pip's own output, less its "Location" warnings; the exit status is pip's (a failed install stops here).
pip_install() {
  .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
  return "${PIPESTATUS[0]}"
}

if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $(python3 --version)"
  python3 -m venv .venv
fi
if .venv/bin/python -c "import torch" 2>/dev/null; then
  step "torch $(.venv/bin/python -c 'import torch; print(torch.__version__)') already installed"
else
  step "installing torch (the largest download: a few minutes on a slow line)"
  pip_install "torch==2.13.0" || { step "torch 2.13.0 not available here: installing the newest torch 2.x"; \
                                   pip_install "torch>=2.2,<3"; }
fi
step "installing afbench and its extras (test, ray, onnx, export)"
pip_install -e ".[test,ray,onnx,export]"
if [ "${AFBENCH_TIMM:-0}" = 1 ]; then
  # timm without its torchvision requirement, which would pull another torch build; the slow tests stand
  # tests/torchvision_stand_in.py in for the names timm imports. pip check then names the missing torchvision.
  step "installing timm (AFBENCH_TIMM=1)"
  pip_install --no-deps "timm>=1.0,<2" && pip_install huggingface_hub safetensors pyyaml
fi
step "checking the installation"
.venv/bin/python -c "import afbench, torch, ray, onnxruntime, tensorboard, mlflow"  # fail here, not in the tests
if ! problems=$(.venv/bin/python -m pip check --disable-pip-version-check 2>&1); then
  # In a new .venv this is clean; an older setup installed timm without torchvision.
  step "note: pip check finds: ${problems//$'\n'/; } (pip uninstall timm, or keep it for the slow tests)"
fi
step "done: .venv/bin/afbench run (the one-minute demo); bash scripts/test.sh (the tests)"

#!/usr/bin/env bash
# Create .venv and install afbench with its test extras. torch==2.13.0 first: on machines
# with a local CPU wheel it is taken from there instead of pulling CUDA builds.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>/dev/null \
  || .venv/bin/python -m pip install -q --disable-pip-version-check "torch>=2.2,<3"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"

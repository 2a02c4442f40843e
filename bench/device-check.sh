#!/usr/bin/env bash
# afbench on a GPU: one prepared call of the device tool (about 8.5 of its 15 minutes).
# Only when `status` says can_start_another is true. Here, in the project root, once
# (in a worktree .git is a file: ask git where its exclude file is):
#   X=$(git rev-parse --git-path info/exclude); mkdir -p "$(dirname "$X")"
#   grep -qx /.device/ "$X" || echo /.device/ >> "$X"; rm -rf .device; mkdir .device
#   cp -r ../shared/device/* .device/; cp bench/device-check.sh .device/check.sh
#   cp -r ../shared/data/mnist .device/mnist; cp ../shared/data/cifar10-jpeg.tar.gz .device/
# Then one call: run(command="bash .device/check.sh", carry=[".device"], timeout_s=560)
# Every step has its own time limit and writes under $OUT (it comes back); a step that
# fails does not stop the next. Put the figures of $OUT/summary.txt in your closing note.
# A dry run on a CPU machine (most steps then stop at their time limits; E2E makes the
# e2e step a smoke run, PY names a python that holds torch):
#   DEV=cpu OUT=/tmp/afbench-dry PY=.venv/bin/python E2E="--quick --activations relu,tanh" bash .device/check.sh
set -u
DEV=${DEV:-cuda}  # DEV=cpu: a dry run on a CPU machine
PY=${PY:-python3}  # on the GPU machine a plain python3 holds PyTorch
E2E=${E2E:---epochs 3 --repeats 1}  # bench/e2e.py's size: one round, 3 epochs x the six activations
OUT=${OUT:-/tmp/afbench-gpu}; L=/tmp/afbench-gpu-logs; D=$PWD/.device
rm -rf $L; mkdir -p "$OUT" $L  # a rerun on a warm machine: no results folder resumed, no stale log
[ -d src/afbench ] || { echo "run check.sh from the project root (src/afbench not found in $PWD)" | tee -a "$OUT/summary.txt"; exit 1; }
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
step() { local name=$1 limit=$2; shift 2; log "$name"; local t0=$(date +%s)
  timeout "$limit" "$@" >"$L/$name.log" 2>&1; local rc=$?
  log "$name: rc=$rc, $(( $(date +%s) - t0 )) s"; { tail -n 25 "$L/$name.log"; echo; } >>"$OUT/summary.txt"; }
$PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$D"/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 AFBENCH_DATA_DIR=$D/mnist
AF="$PY -m afbench.cli"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv >>"$OUT/summary.txt" 2>&1
$PY -c "import torch;print('torch',torch.__version__,'cuda',torch.version.cuda,torch.cuda.is_available() and torch.cuda.get_device_name())" >>"$OUT/summary.txt" 2>&1
mkdir -p /tmp/cifar && tar -xzf "$D/cifar10-jpeg.tar.gz" -C /tmp/cifar 2>/dev/null
CIFAR=$(dirname "$(find /tmp/cifar -maxdepth 3 -type d -name train | head -1)")
# 1. the tests, CUDA visible (CUDA-only tests run here and nowhere else)
step tests 120 $PY -m pytest -x -q -p no:cacheprovider tests
# 2. S1 Table 3 on the GPU end to end (afbench run --preset s1-mnist, 3 epochs here) and a plain
#    PyTorch DataLoader loop training the same six LeNets beside it: bench/e2e.py
step e2e 150 $PY bench/e2e.py --device $DEV --data-dir "$D" $E2E --out $L/e2e
# 3. the cost profile on the GPU (CUDA events, peak memory, bf16/fp16)
step cost 80 $AF cost --dataset mnist --model lenet --activations relu,tanh,selu,prelu,elu,leaky_relu,mish,gelu --device $DEV --out $L/cost
# 4. a CIFAR-sized model, a few epochs, seeds stacked
step resnet20 100 $AF run --dataset "imagefolder:$CIFAR" --model resnet20 --activations relu,gelu --seeds 2 --epochs 2 --device $DEV --out $L/resnet20
# 5. the project's side-by-side speed benchmark on the device (MNIST cases; its CIFAR cases would decode the JPEGs again)
step bench 60 $PY bench/speed.py --device $DEV --data-dir "$D" --cases lenet,mlp,latency --repeats 3
# at most 8 files come back: the summary, all logs in one, and the three result tables
cp $L/e2e/afbench-1/summary.md "$OUT/s1-mnist-summary.md" 2>/dev/null; cp $L/cost/cost.csv "$OUT/cost.csv" 2>/dev/null
cp $L/resnet20/summary.md "$OUT/resnet20-summary.md" 2>/dev/null; tail -n +1 $L/*.log >"$OUT/all.log" 2>/dev/null
ls -la "$OUT"

"""Inside a model: each activation's training-step time (as a ratio to ReLU's) and bytes kept
for backward, with afbench's compiled kernels on and then off.

Usage: python bench/kernels.py [--model resnet20] [--dataset DATA] [--data-dir DIR]
                               [--activations serf,pau,...] [--threads 1] [--budget 60]

Runs `afbench cost` twice, AFBENCH_KERNELS=auto then off, each in a fresh process; each run
pairs every activation with ReLU in its own shuffled rounds, so the ratios compare across
the two runs even if the machine drifts between them. The default data set is random
CIFAR-shaped images (3x32x32, 2,048 training and 512 test, seed 0): step time depends on
shapes, not on what the pixels show. README's ResNet-20 figures come from the defaults with
`--activations serf,acon_c,geglu`. On LeNet and MNIST (`--model lenet --dataset mnist
--data-dir ../shared/data/mnist --activations acon_c,serf,geglu`; activations of 110k and 33k
elements, where the native loops run and Inductor's kernels do not) the step-time ratios
barely moved: acon_c 1.10 [1.07, 1.12] off, 1.09 [1.07, 1.11] on; serf 1.06 [1.03, 1.09],
1.04 [1.01, 1.06]; geglu 1.66 both. When Inductor compiled ACON-C (kernels.MIN_ELEMENTS was
1 << 15 then) the step was slower with the kernel than without: 1.15 [1.12, 1.17] against 1.08.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_ACTIVATIONS = "serf,pau,acon_c,star_relu,rrelu,tanhexp"


def cifar_shaped(folder: Path) -> str:
    rng = np.random.default_rng(0)
    path = folder / "cifar_shaped.npz"
    np.savez(path, x_train=rng.integers(0, 256, (2048, 3, 32, 32), dtype=np.uint8), y_train=rng.integers(0, 10, 2048),
             x_test=rng.integers(0, 256, (512, 3, 32, 32), dtype=np.uint8), y_test=rng.integers(0, 10, 512))
    return f"npz:{path}"


def profile(switch: str, args: argparse.Namespace, dataset: str, out: Path) -> pd.DataFrame:
    command = [sys.executable, "-m", "afbench.cli", "cost", "--dataset", dataset, "--model", args.model,
               "--activations", args.activations, "--threads", str(args.threads), "--budget", str(args.budget),
               "--out", str(out)] + (["--data-dir", args.data_dir] if args.data_dir else [])
    subprocess.run(command, check=True, env={**os.environ, "AFBENCH_KERNELS": switch}, stdout=subprocess.DEVNULL)
    return pd.read_csv(out / "cost.csv").set_index("activation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default=None, help="default: random CIFAR-shaped images")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--activations", default=DEFAULT_ACTIVATIONS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of timing rounds per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dataset = args.dataset or cifar_shaped(folder)
        on, off = (profile(switch, args, dataset, folder / switch) for switch in ("auto", "off"))
    print(f"# {args.model}, {args.threads} thread(s), batch 128; step time / ReLU's [95% CI]; kernels off, then on")
    print("# activation ratio_off ratio_on saved_MB_off saved_MB_on")
    for name in off.index:
        cells = []
        for frame in (off, on):
            row = frame.loc[name]
            cells.append(f"{row.step_ratio:.2f} [{row.step_ratio_low:.2f}, {row.step_ratio_high:.2f}]")
        print(name, *cells, f"{off.loc[name].saved_bytes_per_sample / 1e6:.2f}",
              f"{on.loc[name].saved_bytes_per_sample / 1e6:.2f}")


if __name__ == "__main__":
    main()

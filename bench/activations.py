"""Forward+backward time of each activation on a 1M-element CPU tensor, against ReLU.

Usage: python bench/activations.py [--threads 1] [--repeats 50] [--size 1000000]
                                   [--allocator steady|default] [--processes 3] [names...]
With no names, times every registered hidden activation. Prints one line per
activation: `name ms ratio ratio_range eager_ms eager_ratio budget verdict`: ms and ratio
as afbench runs it (compiled kernels on, see afbench/activations/kernels.py), eager_*
with AFBENCH_KERNELS=off, in the same rounds. The budget is issue 17's (3x ReLU; 6x for
pau; none for the activations that predate it); the verdict reads the first ratio.

--processes 3 (the default) measures in three fresh processes, one after another, and
gives each ratio's median and range over them: where a process's tensors land in memory
moves a ratio from one process to the next on these VMs, so one process is one draw.

--allocator steady (the default) asks glibc to keep freed memory (mallopt), so every
4 MB tensor reuses pages already mapped, as in a training loop's steady state; with
glibc's default a freed block may go back to the OS and the next one page-faults
through all its 1,000 pages, which on these VMs costs as much as the arithmetic and
swings results between runs by 2x.

The input is (rows, 1000): per-channel learnable activations get 1000 channels, and
the gated ones (glu, swiglu, ...) split it into two halves of 500 columns (their
output is half the size, as in a model, where the layer before is twice as wide).
Every round times each (activation, kernels on/off) once in a shuffled order, and the
table takes medians, because these machines are shared and noisy and a timing depends
on what ran just before it: compare only numbers from one run.
"""

import argparse
import ctypes
import json
import os
import random
import statistics
import subprocess
import sys
import time

import torch

from afbench import activations
from afbench.activations.registry import ZOO


def zoo_names() -> list[str]:
    return [spec.name for spec in ZOO]


# Issue 17's budget for the activations it added: forward+backward at most 3x ReLU, PAU 6x.
BUDGET = {name: (6.0 if name == "pau" else 3.0) for name in zoo_names()}
COLUMNS = 1000  # channels on dim 1


def keep_freed_memory() -> None:
    """glibc: serve 4 MB tensors from the heap and never trim it (M_MMAP_THRESHOLD -3, M_TRIM_THRESHOLD -1)."""
    libc = ctypes.CDLL("libc.so.6")
    if not (libc.mallopt(-3, 32 << 20) and libc.mallopt(-1, 1 << 40)):
        raise SystemExit("mallopt failed: run with --allocator default")


def time_once(module: torch.nn.Module, x: torch.Tensor) -> float:
    x = x.detach().requires_grad_(True)
    start = time.perf_counter()
    module(x).sum().backward()
    return time.perf_counter() - start


def measure(args) -> dict[str, tuple[float, float]]:
    """One process's medians, in seconds: name -> (kernels on, kernels off); 'relu' included."""
    if args.allocator == "steady":
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    wanted = args.names or activations.names()
    names = ["relu"] + [activations.info(n).name for n in wanted if activations.info(n).name != "relu"]
    modules = {n: activations.create(n, num_features=COLUMNS).train() for n in names}
    x = torch.randn(max(1, args.size // COLUMNS), COLUMNS)  # (rows, 1000)
    samples: dict[tuple[str, str], list[float]] = {(n, mode): [] for n in names for mode in ("auto", "off")}
    order = list(samples)
    shuffle = random.Random(0).shuffle
    for _ in range(args.repeats + 1):  # every round times each once, in a new order: drift and the
        shuffle(order)                 # position after a given neighbour hit every one alike; round 0 warms up
        for n, mode in order:
            os.environ["AFBENCH_KERNELS"] = mode
            samples[n, mode].append(time_once(modules[n], x))
    medians = {key: statistics.median(values[1:]) for key, values in samples.items()}
    relu = statistics.median(samples["relu", "auto"][1:] + samples["relu", "off"][1:])  # the same code twice
    return {n: (relu, relu) if n == "relu" else (medians[n, "auto"], medians[n, "off"]) for n in names}


def in_processes(args) -> list[dict[str, tuple[float, float]]]:
    """measure() in args.processes fresh processes, one after another (never side by side)."""
    child = [sys.executable, __file__, *args.names, "--threads", str(args.threads), "--repeats", str(args.repeats),
             "--size", str(args.size), "--allocator", args.allocator, "--processes", "1", "--json"]
    return [{n: tuple(v) for n, v in json.loads(subprocess.run(child, check=True, capture_output=True,
                                                               text=True).stdout).items()}
            for _ in range(args.processes)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="activations (default: every registered hidden one)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=50, help="timed repeats per activation (default: %(default)s)")
    parser.add_argument("--size", type=int, default=1_000_000, help="elements (default: %(default)s)")
    parser.add_argument("--allocator", choices=("steady", "default"), default="steady",
                        help="steady: glibc keeps freed memory (default); default: glibc as it comes")
    parser.add_argument("--processes", type=int, default=3,
                        help="fresh processes, one after another; the table gives medians over them "
                             "(default: %(default)s)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one child's raw medians
    args = parser.parse_args()
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    for name in args.names:  # before any process starts: a typo gets the registry's list of names
        try:
            activations.info(name)
        except LookupError as err:
            parser.error(str(err))
    if args.json:
        print(json.dumps(measure(args)))
        return
    runs = [measure(args)] if args.processes == 1 else in_processes(args)
    print(f"# torch {torch.__version__}, {args.threads} thread(s), {args.size} elements, median of {args.repeats} "
          f"rounds in each of {args.processes} process(es), allocator {args.allocator}")
    print("# name ms ratio ratio_range eager_ms eager_ratio budget verdict")
    print("# (ms: median over processes; ratios: to ReLU in the same process, median and range over processes)")
    for n in runs[0]:
        ratios = [run[n][0] / run["relu"][0] for run in runs]
        eager_ratios = [run[n][1] / run["relu"][0] for run in runs]
        ratio, budget = statistics.median(ratios), BUDGET.get(n)
        verdict = "-" if budget is None else ("ok" if ratio <= budget else "OVER")
        print(f"{n} {statistics.median(run[n][0] for run in runs) * 1e3:.3f} {ratio:.2f} "
              f"{min(ratios):.2f}-{max(ratios):.2f} {statistics.median(run[n][1] for run in runs) * 1e3:.3f} "
              f"{statistics.median(eager_ratios):.2f} {budget or '-'} {verdict}")


if __name__ == "__main__":
    main()

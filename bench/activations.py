"""Forward+backward time of each activation on a 1M-element CPU tensor, against ReLU.

Usage: python bench/activations.py [--threads 1] [--repeats 50] [--size 1000000] [names...]
With no names, times every registered hidden activation. Prints one line per
activation: `name ms_per_fwd_bwd ratio_to_relu budget verdict`, where the budget is
issue 17's (3x ReLU; 6x for pau; none for the activations that predate it).

The input is (rows, 1000): per-channel learnable activations get 1000 channels, and
the gated ones (glu, swiglu, ...) split it into two halves of 500 columns (their
output is half the size, as in a model, where the layer before is twice as wide).
Timings alternate between activations and take the median, because these
machines are shared and noisy: compare only numbers from one run.
"""

import argparse
import statistics
import time

import torch

from afbench import activations
from afbench.activations.zoo import ZOO


def zoo_names() -> list[str]:
    return [spec.name for spec in ZOO]


# Issue 17's budget for the activations it added: forward+backward at most 3x ReLU, PAU 6x.
BUDGET = {name: (6.0 if name == "pau" else 3.0) for name in zoo_names()}
COLUMNS = 1000  # channels on dim 1


def time_once(module: torch.nn.Module, x: torch.Tensor) -> float:
    x = x.detach().requires_grad_(True)
    start = time.perf_counter()
    module(x).sum().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="activations (default: every registered hidden one)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=50, help="timed repeats per activation (default: %(default)s)")
    parser.add_argument("--size", type=int, default=1_000_000, help="elements (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wanted = args.names or activations.names()
    names = ["relu"] + [activations.info(n).name for n in wanted if activations.info(n).name != "relu"]
    modules = {n: activations.create(n, num_features=COLUMNS).train() for n in names}
    x = torch.randn(max(1, args.size // COLUMNS), COLUMNS)  # (rows, 1000)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for n in names:  # warm-up
        time_once(modules[n], x)
    for _ in range(args.repeats):  # alternate, so drift hits every activation alike
        for n in names:
            samples[n].append(time_once(modules[n], x))
    relu = statistics.median(samples["relu"])
    print(f"# torch {torch.__version__}, {args.threads} thread(s), {x.numel()} elements, median of {args.repeats}")
    print("# name ms ratio budget verdict")
    for n in names:
        median = statistics.median(samples[n])
        ratio, budget = median / relu, BUDGET.get(n)
        verdict = "-" if budget is None else ("ok" if ratio <= budget else "OVER")
        print(f"{n} {median * 1e3:.3f} {ratio:.2f} {budget or '-'} {verdict}")


if __name__ == "__main__":
    main()

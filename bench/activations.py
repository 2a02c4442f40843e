"""Forward+backward time of each activation on a 1M-element CPU tensor, against ReLU.

Usage: python bench/activations.py [--threads 1] [--repeats 50] [names...]
Prints one line per activation: `name ms_per_fwd_bwd ratio_to_relu`.
Timings alternate between activations and take the median, because these
machines are shared and noisy: compare only numbers from one run.
"""

import argparse
import statistics
import time

import torch

from afbench import activations

DEFAULT = ["relu", "leaky_relu", "elu", "gelu", "silu", "mish", "softplus", "noisy_relu",
           "relu_softplus", "relu_softsign"]


def time_once(module: torch.nn.Module, x: torch.Tensor) -> float:
    x = x.detach().requires_grad_(True)
    start = time.perf_counter()
    module(x).sum().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=DEFAULT, help="activations (default: a representative set)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=50, help="timed repeats per activation (default: %(default)s)")
    parser.add_argument("--size", type=int, default=1_000_000, help="elements (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = ["relu"] + [n for n in args.names if n != "relu"]
    modules = {n: activations.create(n).train() for n in names}
    x = torch.randn(args.size)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for n in names:  # warm-up
        time_once(modules[n], x)
    for _ in range(args.repeats):  # alternate, so drift hits every activation alike
        for n in names:
            samples[n].append(time_once(modules[n], x))
    relu = statistics.median(samples["relu"])
    print(f"# torch {torch.__version__}, {args.threads} thread(s), {args.size} elements, median of {args.repeats}")
    for n in names:
        median = statistics.median(samples[n])
        print(f"{n} {median * 1e3:.3f} {median / relu:.2f}")


if __name__ == "__main__":
    main()

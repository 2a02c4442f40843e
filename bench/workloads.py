"""Direction checks of the workload families (issue 26), at their default (small) sizes.

Each family trains the activations that the literature ranks, over paired seeds
(same seed: same data order and same initial weights of every layer the activation
does not change), and prints the primary metric per activation and seed, its mean,
and for each pair the paired differences with the number of seeds in which the
first is better:

- charlm: GEGLU and SwiGLU below ReLU in validation bits per character at matched
  parameters (Shazeer 2020);
- inr: sine (SIREN) > ReLU with Fourier features > ReLU, tanh in PSNR;
- pinn: ReLU fails (relative L2 error near 1), tanh, sine and SiLU solve it;
- regression: the rankings per function (no claim: they change with the function).

Run on a quiet machine, one thread:
    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/workloads.py --seeds 3
    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/workloads.py --families charlm --seeds 3 --epochs 10
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from afbench import data, workloads
from afbench.config import RunConfig
from afbench.engine.train import train

CHECKS = {  # family: ([(label, activation, model or None)], [(better, worse)])
    "charlm": ([("relu", "relu", None), ("geglu", "geglu", None), ("swiglu", "swiglu", None),
                ("gelu", "gelu", None)], [("geglu", "relu"), ("swiglu", "relu"), ("gelu", "relu")]),
    "inr": ([("sine", "sin(x)", "mlp"), ("relu+pe", "relu", "mlp-pe"), ("relu", "relu", "mlp"),
             ("tanh", "tanh", "mlp")], [("sine", "relu+pe"), ("relu+pe", "relu"), ("relu+pe", "tanh")]),
    "pinn": ([("relu", "relu", None), ("tanh", "tanh", None), ("sine", "sin(x)", None), ("silu", "silu", None)],
             [("tanh", "relu"), ("sine", "relu"), ("silu", "relu")]),
    "regression": ([("relu", "relu", None), ("gelu", "gelu", None), ("silu", "silu", None),
                    ("tanh", "tanh", None)], []),
}


def run_family(family: str, seeds: list[int], epochs: int | None, dataset: str | None) -> None:
    workload = workloads.get(family)
    prepared = data.prepare(data.load(dataset or workload.data))
    primary = workload.primary
    cases, pairs = CHECKS[family]
    values: dict[str, list[float]] = {}
    print(f"\n== {family} ({dataset or workload.data}): {primary.name}, {primary.direction}; seeds {seeds}")
    for label, activation, model in cases:
        for seed in seeds:
            settings = {**workload.settings(), "activation": activation, "seed": seed, "latency_samples": 10}
            if model:
                settings["model"] = model
            if epochs:
                settings["epochs"] = epochs
            start = time.perf_counter()
            result = train(RunConfig(**settings), prepared)
            value = result.summary.primary_value
            values.setdefault(label, []).append(value if value is not None else float("nan"))
            print(f"  {label:8s} seed {seed}: {primary.name} {value:.4f}  params {result.summary.params:,}  "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
    print("  means: " + ", ".join(f"{k} {statistics.fmean(v):.4f}" for k, v in values.items()))
    for better, worse in pairs:
        diffs = [b - w for b, w in zip(values[better], values[worse])]
        wins = sum((d > 0) if primary.higher_is_better else (d < 0) for d in diffs)
        print(f"  {better} vs {worse}: paired differences {', '.join(f'{d:+.4f}' for d in diffs)}; "
              f"{better} better in {wins} of {len(diffs)} seeds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="pinn,inr,regression,charlm")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="override the workload's default epochs")
    parser.add_argument("--dataset", help="override the workload's data (e.g. special:jv)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for family in args.families.split(","):
        run_family(family, list(range(args.seeds)), args.epochs, args.dataset)


if __name__ == "__main__":
    main()

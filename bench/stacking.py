"""k seeds trained as one stack against k runs one by one, side by side in one process.

Speed, per case (MLP/MNIST batch 64, LeNet/MNIST batch 128), a fixed number of
steps each, alternating and repeating, medians:
- plain:   k tuned plain PyTorch loops, one after the other (bench/speed.py's:
           preloaded tensors, randperm slices; channels_last for LeNet);
- afbench: the engine's loop, k runs one after the other;
- stacked: the engine's stack of k seeds (afbench.engine.stack).

Statistics: each seed trained for real, alone and in a stack, for a few epochs;
the final test errors of the two ways are compared (mean, sd, Welch's t-test).
The MLP has no dropout, so a member follows its lone run's arithmetic up to
the order of floating-point sums (which a few thousand steps amplify a little);
LeNet's dropout masks are drawn differently in a stack, so its members may differ
from their lone runs, but not in distribution.

Usage: python bench/stacking.py [--data-dir ../shared/data] [--seeds 6] [--stats-epochs 2]
Prints one machine-readable line per case and implementation, then one per statistics case:
  case=mlp-mnist impl=stacked k=6 s_per_run_epoch=... vs_plain=... vs_afbench=...
  stats=mlp-mnist epochs=2 alone_err=...+-... stacked_err=...+-... max_member_diff=... welch_p=...
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from scipy import stats
from speed import alternate, tuned_steps  # bench/ is on sys.path when a script in it runs

from afbench import data, models
from afbench.config import RunConfig
from afbench.engine import train as engine

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CASES = {"mlp-mnist": ("mlp", 64), "lenet-mnist": ("lenet", 128)}


def speed(name: str, prepared, k: int, steps: int, repeats: int) -> None:
    model_name, batch = CASES[name]
    config = RunConfig(model=model_name, activation="relu", batch_size=batch, dataset=prepared.name)
    model = lambda: models.build(model_name, "relu", prepared.input_shape, prepared.num_classes)
    x, y = prepared.train.x, prepared.train.y
    impls = {"plain": lambda: k * tuned_steps(model(), x, y, batch, steps, conv=model_name != "mlp"),
             "afbench": lambda: k * engine.time_training_steps(config, prepared, steps),
             "stacked": lambda: engine.time_training_steps(config, prepared, steps, stack=k)}
    epoch_steps = -(-len(prepared.train) // batch)
    per_run_epoch = {impl: t / k * epoch_steps / steps for impl, t in alternate(impls, repeats).items()}
    for impl, seconds in per_run_epoch.items():
        print(f"case={name} impl={impl} k={k} s_per_run_epoch={seconds:.3f} "
              f"vs_plain={per_run_epoch['plain'] / seconds:.2f} vs_afbench={per_run_epoch['afbench'] / seconds:.2f}",
              flush=True)


def seed_statistics(name: str, prepared, k: int, epochs: int) -> None:
    model_name, batch = CASES[name]
    configs = [RunConfig(model=model_name, activation="relu", batch_size=batch, epochs=epochs, seed=s,
                         dataset=prepared.name, latency_samples=10) for s in range(k)]
    alone = [1 - engine.train(c, prepared).epochs[-1]["test_acc"] for c in configs]
    stacked = [1 - r.epochs[-1]["test_acc"] for r in engine.train_stack(configs, prepared)]
    welch = stats.ttest_ind(alone, stacked, equal_var=False).pvalue if len(set(alone + stacked)) > 1 else 1.0
    print(f"stats={name} epochs={epochs} seeds={k} "
          f"alone_err={statistics.mean(alone):.4f}+-{statistics.stdev(alone):.4f} "
          f"stacked_err={statistics.mean(stacked):.4f}+-{statistics.stdev(stacked):.4f} "
          f"max_member_diff={max(abs(a - b) for a, b in zip(alone, stacked)):.4f} welch_p={welch:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="holds mnist/")
    parser.add_argument("--seeds", type=int, default=6, help="k, the stack size (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=60, help="training steps per timing (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stats-epochs", type=int, default=2, help="epochs per run for the statistics; 0 skips "
                                                                    "them (default: %(default)s)")
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads")
    mnist = data.prepare(data.load("mnist", Path(args.data_dir) / "mnist", download=False))
    cases = args.cases.split(",")
    for name in cases:
        speed(name, mnist, args.seeds, args.steps, args.repeats)
    if args.stats_epochs:
        for name in cases:
            seed_statistics(name, mnist, args.seeds, args.stats_epochs)


if __name__ == "__main__":
    main()

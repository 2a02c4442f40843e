"""k seeds trained as one stack against k runs one by one, side by side in one process.

Speed, per case (MLP/MNIST batch 64, LeNet/MNIST batch 128), a fixed number of
steps each, alternating and repeating, medians:
- plain:   k tuned plain PyTorch loops, one after the other (bench/speed.py's:
           preloaded tensors, randperm slices; channels_last for LeNet);
- afbench: the engine's loop, k runs one after the other;
- stacked: the engine's stack of k seeds (afbench.engine.stack);
- activations: k runs of S1's activations (relu, tanh, selu, prelu, elu,
  leaky_relu, cycled), one seed each, through the engine one after another;
- fused: the same k runs as one stack, each member with its own activation.

Statistics: each seed trained for real, alone and in a stack, for a few epochs;
the final test errors of the two ways are compared (mean, sd, Welch's t-test).
Each member draws its lone run's dropout masks (its own random state), so a
member follows its lone run's arithmetic up to the order of floating-point sums
(which a few thousand steps amplify a little).

conv-layout: forward and backward of k LeNets' convolutional parts, as k small
convolutions per layer (what the stack does) and as one grouped convolution.

Usage: python bench/stacking.py [--data-dir ../shared/data] [--seeds 6] [--stats-epochs 2] [--cases ...]
Prints one machine-readable line per case and implementation, then one per statistics case:
  case=mlp-mnist impl=stacked k=6 s_per_run_epoch=... vs_plain=... vs_afbench=... vs_activations=...
  stats=mlp-mnist epochs=2 alone_err=...+-... stacked_err=...+-... max_member_diff=... welch_p=...
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy import stats
from speed import alternate, tuned_steps  # bench/ is on sys.path when a script in it runs

from afbench import data, models
from afbench.config import RunConfig
from afbench.engine import train as engine

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CASES = {"mlp-mnist": ("mlp", 64), "lenet-mnist": ("lenet", 128)}
S1_ACTIVATIONS = ("relu", "tanh", "selu", "prelu", "elu", "leaky_relu")  # S1 Table 3's, one seed each


def speed(name: str, prepared, k: int, steps: int, repeats: int) -> None:
    model_name, batch = CASES[name]
    config = RunConfig(model=model_name, activation="relu", batch_size=batch, dataset=prepared.name)
    model = lambda: models.build(model_name, "relu", prepared.input_shape, prepared.num_classes)
    x, y = prepared.train.x, prepared.train.y
    members = [config.with_(activation=S1_ACTIVATIONS[i % len(S1_ACTIVATIONS)]) for i in range(k)]
    impls = {"plain": lambda: k * tuned_steps(model(), x, y, batch, steps, conv=model_name != "mlp"),
             "afbench": lambda: k * engine.time_training_steps(config, prepared, steps),
             "stacked": lambda: engine.time_training_steps(config, prepared, steps, stack=k),
             "activations": lambda: sum(engine.time_training_steps(m, prepared, steps) for m in members),
             "fused": lambda: engine.time_training_steps(members[0], prepared, steps, members=members)}
    epoch_steps = -(-len(prepared.train) // batch)
    per_run_epoch = {impl: t / k * epoch_steps / steps for impl, t in alternate(impls, repeats).items()}
    for impl, seconds in per_run_epoch.items():
        print(f"case={name} impl={impl} k={k} s_per_run_epoch={seconds:.3f} "
              f"vs_plain={per_run_epoch['plain'] / seconds:.2f} vs_afbench={per_run_epoch['afbench'] / seconds:.2f}"
              f" vs_activations={per_run_epoch['activations'] / seconds:.2f}", flush=True)


def grouped_head(heads: list, k: int):
    """LeNet's convolutional part for k members as grouped convolutions (the
    alternative afbench.engine.stack rejects): the same weights, channels side by side."""
    conv1, conv2 = (torch.nn.Conv2d(k, 10 * k, 5, groups=k), torch.nn.Conv2d(10 * k, 20 * k, 5, groups=k))
    with torch.no_grad():
        for conv, name in ((conv1, "conv1"), (conv2, "conv2")):
            conv.weight.copy_(torch.cat([getattr(h, name).weight for h in heads]))
            conv.bias.copy_(torch.cat([getattr(h, name).bias for h in heads]))

    def forward(x):  # x (k, B, 1, H, W) -> (B, k, H, W): member i is channel i
        h = F.relu(F.max_pool2d(conv1(x.squeeze(2).transpose(0, 1)), 2))
        return F.relu(F.max_pool2d(F.dropout2d(conv2(h), 0.5), 2))
    return forward, [conv1.weight, conv1.bias, conv2.weight, conv2.bias]


def conv_layout(prepared, k: int, steps: int, repeats: int) -> None:
    """Forward and backward of k LeNets' convolutional parts: k small convolutions
    per layer (what the stack does) against one grouped convolution."""
    heads = [models.build("lenet", "relu", prepared.input_shape, prepared.num_classes)[:7] for _ in range(k)]  # conv1 .. act2
    grouped, grouped_params = grouped_head(heads, k)
    x = prepared.train.x[: k * 128].reshape(k, 128, *prepared.input_shape)

    def timed(forward, params):
        def run():
            start = time.perf_counter()
            for _ in range(steps):
                out = forward(x)
                torch.autograd.grad(out.sum(), params)
            return time.perf_counter() - start
        return run

    per_member = lambda x: torch.stack([h(part) for h, part in zip(heads, x.unbind(0))])
    member_params = [p for h in heads for p in h.parameters()]
    medians = alternate({"per-member": timed(per_member, member_params),
                         "grouped": timed(grouped, grouped_params)}, repeats)
    for impl, seconds in medians.items():
        print(f"case=conv-layout impl={impl} k={k} ms_per_step={seconds / steps * 1e3:.2f} "
              f"vs_per_member={medians['per-member'] / seconds:.2f}", flush=True)


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
    parser.add_argument("--cases", default=",".join(CASES) + ",conv-layout")
    args = parser.parse_args()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads")
    mnist = data.prepare(data.load("mnist", Path(args.data_dir) / "mnist", download=False))
    cases = args.cases.split(",")
    for name in (c for c in cases if c in CASES):
        speed(name, mnist, args.seeds, args.steps, args.repeats)
    if "conv-layout" in cases:
        conv_layout(mnist, args.seeds, args.steps, args.repeats)
    if args.stats_epochs:
        for name in (c for c in cases if c in CASES):
            seed_statistics(name, mnist, args.seeds, args.stats_epochs)


if __name__ == "__main__":
    main()

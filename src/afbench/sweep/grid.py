"""Experiment grids and the studies' presets.

A sweep is activations x models x data sets x seeds (x learning rates). Seeds are
the outer loop, so a sweep stopped half-way holds complete, paired seeds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from afbench.config import RunConfig
from afbench.errors import AfbenchError, lookup

S1_ACTIVATIONS = ("relu", "tanh", "selu", "prelu", "elu", "leaky_relu")
S4_ACTIVATIONS = ("relu", "leaky_relu", "softplus", "softsign", "relu_softplus", "relu_softsign")


@dataclass(frozen=True)
class Grid:
    base: RunConfig
    activations: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    lrs: tuple[float, ...] = ()
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()

    def configs(self) -> list[RunConfig]:
        if not self.activations:
            raise AfbenchError("a sweep needs at least one activation (--activations relu,tanh,...)")
        base = self.base
        if len(self.lrs) > 1 and base.valid_fraction == 0 and base.split != "s2":
            # The learning rate is a nuisance parameter chosen on validation data, never on test.
            base = base.with_(valid_fraction=0.1)
        out = []
        for seed, dataset, model, lr, activation in itertools.product(
                self.seeds, self.datasets or (base.dataset,), self.models or (base.model,),
                self.lrs or (base.lr,), self.activations):
            out.append(base.with_(seed=seed, dataset=dataset, model=model, lr=lr, activation=activation))
        return out


PRESETS: dict[str, dict] = {
    # S1 Table 3: LeNet on MNIST, Adam 1e-3, batch 128, 10 epochs, target 98%.
    "s1-mnist": dict(dataset="mnist", model="lenet", activations=S1_ACTIVATIONS, epochs=10, batch_size=128,
                     optimizer="adam", lr=1e-3, target=0.98),
    # S1 Table 4: VGG-11 (BatchNorm) on CIFAR-10, 50 epochs, target 87%.
    "s1-cifar10": dict(dataset="cifar10", model="vgg11", activations=S1_ACTIVATIONS, epochs=50, batch_size=128,
                       optimizer="adam", lr=1e-3, target=0.87),
    # S2: MLP 784-128-64-10, SGD, batch 64, 100 epochs, MNIST re-split 7:2:1.
    "s2-mlp": dict(dataset="mnist", model="mlp", activations=("relu", "leaky_relu", "sigmoid"), epochs=100,
                   batch_size=64, optimizer="sgd", lr=0.01, momentum=0.0, split="s2"),
    # S4: the combined activations against their parts, LeNet on MNIST, 3 seeds, and a few
    # learning rates (S4 claims relu-softplus needed small ones): each activation at its best.
    "s4-relu-softsign": dict(dataset="mnist", model="lenet", activations=S4_ACTIVATIONS, epochs=10, batch_size=128,
                             optimizer="adam", lr=1e-3, lrs=(3e-4, 1e-3, 3e-3), seeds=3, target=0.98),
    # S4's harder data: VGG-11 on CIFAR-100 (a GPU job; add --train-subset on a CPU).
    "s4-cifar100": dict(dataset="cifar100", model="vgg11", activations=S4_ACTIVATIONS, epochs=30, batch_size=128,
                        optimizer="adam", lr=1e-3, lrs=(3e-4, 1e-3, 3e-3), seeds=3, augment=True, target=0.5),
    # The embedded demo: what a fair comparison looks like. Eight common activations, 10 paired seeds each
    # (stacked, so a seed costs little), an MLP on scikit-learn's digits: the verdict shows which differences
    # the seeds support and which they do not. Every activation: --activations all.
    "quick": dict(dataset="digits", model="mlp", activations=("relu", "leaky_relu", "elu", "gelu", "silu", "mish",
                                                              "tanh", "sigmoid"),
                  epochs=15, batch_size=64, optimizer="adam", lr=3e-3, target=0.95, seeds=10),
}


def preset(name: str) -> dict:
    """The settings of preset ``name`` (a copy, safe to modify)."""
    return dict(PRESETS[lookup("preset", name, PRESETS)])

"""Experiment grids: the runs a sweep trains (a study, afbench.sweep.study, builds one).

A sweep is activations x models x data sets x seeds (x learning rates). Seeds are
the outer loop, so a sweep stopped half-way holds complete, paired seeds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from afbench.config import RunConfig
from afbench.errors import AfbenchError

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

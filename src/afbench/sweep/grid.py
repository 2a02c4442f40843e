"""Experiment grids: the runs a sweep trains (a study, afbench.sweep.study, builds one).

A sweep is activations x models x data sets x seeds (x learning rates). Seeds are
the outer loop, so a sweep stopped half-way holds complete, paired seeds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from afbench.config import RunConfig
from afbench.errors import AfbenchError

MAX_RUNS = 10_000  # runs in one sweep: more is a typo (or a sweep to split), refused before any is made
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

    def holds_out_validation(self) -> bool:
        """Does ``configs`` hold out 10% of the training split for validation? With several
        learning rates and none given: the rate is a nuisance parameter chosen on
        validation data, never on test."""
        return len(self.lrs) > 1 and self.base.valid_fraction == 0 and self.base.split != "s2"

    def configs(self) -> list[RunConfig]:
        if not self.activations:
            raise AfbenchError("a sweep needs at least one activation (--activations relu,tanh,...)")
        self.check_size()
        base = self.base.with_(valid_fraction=0.1) if self.holds_out_validation() else self.base
        out = []
        for seed, dataset, model, lr, activation in itertools.product(
                self.seeds, self.datasets or (base.dataset,), self.models or (base.model,),
                self.lrs or (base.lr,), self.activations):
            out.append(base.with_(seed=seed, dataset=dataset, model=model, lr=lr, activation=activation))
        return out

    def size(self) -> int:
        """The number of runs, counted without making them."""
        return (len(self.seeds) * len(self.datasets or (0,)) * len(self.models or (0,)) * len(self.lrs or (0,))
                * len(self.activations))

    def check_size(self, limit: int = MAX_RUNS, seeds_flag: str = "--seeds") -> None:
        """Refuse a grid of more than ``limit`` runs, naming its factors and how to lower them."""
        runs = self.size()
        if runs <= limit:
            return
        factors = [(len(self.activations), "activations", "--activations"), (len(self.seeds), "seeds", seeds_flag),
                   (len(self.lrs), "learning rates", "--lr"), (len(self.models), "models", "--models"),
                   (len(self.datasets), "data sets", "--datasets")]
        parts = [(f"{n:,} {what}", flag) for n, what, flag in factors if n > 1]
        raise AfbenchError(f"this sweep has {runs:,} runs ({' x '.join(p for p, _ in parts)}), more than the "
                           f"{limit:,} one sweep may hold: lower {' or '.join(f for _, f in parts)}, or split it "
                           "into several sweeps (`afbench merge` joins their results folders)")

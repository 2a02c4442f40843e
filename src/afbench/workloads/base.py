"""The workload contract: everything one task is, in one object the engine trains.

A ``Workload`` says
- its data: ``load_data(name)`` gives the train / validation / test splits as a
  ``Prepared`` (tensors on the CPU; the sweep moves them to the run's device once),
  and ``batches`` how a training batch is drawn (default: slices of a per-epoch
  permutation of the training split, as the image workloads always did);
- its model: ``build(config, data, act_layer)`` builds it with the activation passed
  in (``act_layer(width)`` makes one activation module; ``act_layer.width_multiplier``
  says how much wider the layer before a gated unit must be). The workload owns its
  model, so nothing is swapped after the fact;
- its loss: ``loss(forward, model, x, y)`` -> (mean loss, output), under the engine's
  one training step (``afbench.engine.step``);
- its metrics: ``evaluate(model, split)`` -> {name: value}, holding ``"loss"`` and the
  ONE primary metric ``primary`` with its direction (``Metric.higher_is_better``);
- ``target``: the primary metric's value for "time to target";
- ``defaults``: the budget and optimiser it was sized for (RunConfig fields: epochs,
  batch size, learning rate, optimizer) at ``size`` "small" (about a minute a run on
  two CPU cores) or "large" (for a GPU).

A workload of your own is a function returning a ``Workload`` (subclass it, override
``load_data``, ``build``, ``loss`` and ``evaluate``), given as ``--workload
my_tasks.py:make`` (see README, "Workloads"). Its runs store ``dataset`` = its
``data`` name and ``model`` = its ``model`` name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn

from afbench.data import Prepared, Split

Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Metric:
    """A metric's name and which way is better."""

    name: str
    higher_is_better: bool
    unit: str = ""

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    def reached(self, value: float | None, target: float | None) -> bool:
        """``value`` is at least as good as ``target``."""
        if value is None or target is None or not math.isfinite(value):
            return False
        return value >= target if self.higher_is_better else value <= target


@dataclass
class Workload:
    """One task. Subclasses fill the four methods; the fields describe it."""

    name: str
    family: str  # classification | charlm | inr | pinn | regression | your own
    description: str
    data: str  # the default data set name (RunConfig.dataset)
    model: str  # the default model name (RunConfig.model)
    primary: Metric
    models: tuple[str, ...] = ()  # the model names it can build (default: just ``model``)
    size: str = "small"
    target: float | None = None  # of the primary metric, for time to target
    defaults: dict = field(default_factory=dict)  # RunConfig fields it was sized for
    double_backward: bool = False  # the loss differentiates the network: its activations need second derivatives
    autocast: bool = True  # bfloat16 autocast on a GPU (the engine's default); off where precision is the point

    # -- data -------------------------------------------------------------------------------
    def load_data(self, name: str) -> Prepared:
        raise NotImplementedError

    def owns(self, name: str) -> bool:
        """Whether ``load_data`` knows the data set ``name``."""
        return name == self.data

    def data_available(self) -> bool:
        """Whether ``data`` can be loaded here without the network."""
        return True

    def batches(self, split: Split, batch_size: int, order: torch.Generator) -> Iterator[torch.Tensor]:
        """Index tensors of one epoch's batches (on the split's device)."""
        yield from torch.randperm(len(split), generator=order).to(split.x.device).split(batch_size)

    def steps_per_epoch(self, split: Split, batch_size: int) -> int:
        return math.ceil(len(split) / batch_size)

    # -- model ------------------------------------------------------------------------------
    def build(self, config, data: Prepared, act_layer) -> nn.Module:
        raise NotImplementedError

    def check_activation(self, act_layer) -> str | None:
        """Why this workload cannot train with ``act_layer`` (None: it can)."""
        return None

    # -- loss and metrics -------------------------------------------------------------------
    def loss(self, forward: Forward, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        """(mean training loss, the model's output) for one batch."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, split: Split) -> dict[str, float]:
        """Metrics on ``split``: at least ``loss`` and ``primary.name``."""
        raise NotImplementedError

    def diverged(self, train_loss: float, data: Prepared) -> bool:
        """A loss that is no longer a number has diverged."""
        return not math.isfinite(train_loss)

    # -- description ------------------------------------------------------------------------
    @property
    def model_names(self) -> tuple[str, ...]:
        return self.models or (self.model,)

    def settings(self) -> dict:
        """The RunConfig fields a run of this workload starts from."""
        return {"workload": self.name, "dataset": self.data, "model": self.model, **self.defaults}


def act_name(act_layer) -> str:
    return getattr(act_layer, "name", str(act_layer))


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""Function regression: an MLP fits a smooth function from scipy.special, as in the
KAN-versus-MLP comparisons, where GELU and ReLU trade places from function to function.

Data (``special:NAME``): 1024 training and 2048 test inputs drawn uniformly (seed 0)
from the function's domain; targets standardised by the training mean and sd.
- ``special:j0``: Bessel J0(x), x in [0, 20] (oscillating, decaying);
- ``special:ellipk``: the complete elliptic integral K(m), m in [0, 0.999] (a log singularity at 1);
- ``special:jv``: Bessel J_nu(x), nu in [0, 4], x in [0, 12] (two inputs).
Metric: test mean squared error (standardised units), lower is better.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special
from torch import nn

from afbench.data import Prepared, Split
from afbench.errors import AfbenchError
from afbench.workloads.base import Metric, Workload

TRAIN, TEST = 1024, 2048
FUNCTIONS = {  # name: (function of the columns, low corner, high corner)
    "j0": (lambda v: special.j0(v[:, 0]), [0.0], [20.0]),
    "ellipk": (lambda v: special.ellipk(v[:, 0]), [0.0], [0.999]),
    "jv": (lambda v: special.jv(v[:, 0], v[:, 1]), [0.0, 0.0], [4.0, 12.0]),
}


def sample(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    key = name.removeprefix("special:")
    if not name.startswith("special:") or key not in FUNCTIONS:
        raise AfbenchError(f"unknown function '{name}': use one of {', '.join('special:' + f for f in FUNCTIONS)}")
    function, low, high = FUNCTIONS[key]
    rng = np.random.default_rng(0)
    low, high = np.array(low), np.array(high)
    x_train = low + (high - low) * rng.random((TRAIN, len(low)))
    x_test = low + (high - low) * rng.random((TEST, len(low)))
    return x_train, function(x_train), x_test, function(x_test)


def mlp(act_layer, inputs: int, width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    multiplier = getattr(act_layer, "width_multiplier", 1)
    for _ in range(depth):
        layers += [nn.Linear(inputs, multiplier * width), act_layer(multiplier * width)]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, 1))


class Regression(Workload):
    def __init__(self, name: str, size: str, width: int, depth: int, defaults: dict, target: float) -> None:
        super().__init__(name, "regression", f"function regression: MLP {depth}x{width} on a scipy.special "
                                             f"function ({', '.join('special:' + f for f in FUNCTIONS)})",
                         data="special:j0", model="mlp", primary=Metric("mse", False), size=size, target=target,
                         defaults=defaults)
        self.width, self.depth = width, depth

    def owns(self, name: str) -> bool:
        return name.startswith("special:")

    def load_data(self, name: str) -> Prepared:
        x_train, y_train, x_test, y_test = sample(name)
        low, high = x_train.min(axis=0), x_train.max(axis=0)
        mean, sd = y_train.mean(), y_train.std()

        def split(x, y):  # inputs to [-1, 1], targets standardised by the training split
            return Split(torch.tensor(2 * (x - low) / (high - low) - 1, dtype=torch.float32),
                         torch.tensor((y - mean) / sd, dtype=torch.float32).reshape(-1, 1))

        return Prepared(name, (), split(x_train, y_train), split(x_test, y_test), None, (float(mean),), (float(sd),))

    def build(self, config, data: Prepared, act_layer) -> nn.Module:
        if config.model != self.model:
            raise AfbenchError(f"the regression workload builds '{self.model}', not '{config.model}'")
        return mlp(act_layer, data.train.x.shape[1], self.width, self.depth)

    def loss(self, forward, model, x, y):
        output = forward(model, x)
        return F.mse_loss(output, y), output

    @torch.inference_mode()
    def evaluate(self, model, split: Split) -> dict[str, float]:
        model.eval()
        mse = float((model(split.x).float() - split.y).pow(2).mean())
        return {"loss": mse, "mse": mse}


def small() -> Regression:
    return Regression("regression", "small", 64, 3, {"epochs": 40, "batch_size": 64, "lr": 2e-3}, target=0.01)


def large() -> Regression:
    return Regression("regression-large", "large", 256, 4, {"epochs": 200, "batch_size": 256, "lr": 1e-3},
                      target=0.001)

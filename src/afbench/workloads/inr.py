"""Image fitting (an implicit neural representation): a coordinate MLP maps a pixel's
(x, y) in [-1, 1]^2 to its grey level, trained on every pixel of one fixed image.

Where the activation decides everything: SIREN (Sitzmann et al. 2020) fits with sine
units far better than ReLU with Fourier features (Tancik et al. 2020), which fits far
better than plain ReLU or tanh, whose networks are biased towards low frequencies.

- activation ``sin(x)`` (the formula; aliases ``sine``/``siren`` are not registered
  activations): SIREN, with its own initialisation: the pre-activations are scaled by
  w0 = 30, the first layer's weights drawn from U(-1/in, 1/in) and the others' from
  U(-sqrt(6/in)/w0, sqrt(6/in)/w0);
- model ``mlp`` (plain coordinates) or ``mlp-pe`` (Fourier features: sin and cos of
  2 pi B v with B ~ N(0, sigma^2), 128 frequencies, fixed by seed 0, not trained; sigma is
  Tancik et al.'s 10 rescaled to this resolution, ``fourier_scale``).

Data: ``china-128`` (``china-256`` large), scikit-learn's sample photograph china.jpg in
grey, cropped square and downsampled by block means; grey levels scaled to [-1, 1].
As in Tancik et al. 2020, the network is fitted to every other pixel (even rows and
columns) and tested on the pixels in between, so memorising the training pixels is
not enough. Metric: test PSNR in dB on [0, 1] grey levels (10 log10(1 / MSE)),
higher is better.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from afbench.data import Prepared, Split
from afbench.errors import AfbenchError
from afbench.workloads.base import Metric, Workload, act_name

W0 = 30.0
FOURIER_FEATURES = 128
FOURIER_SCALE = 10.0  # Tancik et al.'s best sigma for 256 training pixels a side on [0, 1]: scaled to ours


def is_sine(act_layer) -> bool:
    return re.sub(r"\s", "", act_name(act_layer).lower()) in ("sin(x)", "sine", "siren")


def image(name: str) -> np.ndarray:
    """(side, side) float grey levels in [0, 1] of ``china-SIDE``."""
    match = re.fullmatch(r"china-(\d+)", name)
    if not match or not 8 <= int(match.group(1)) <= 420:
        raise AfbenchError(f"unknown image '{name}': use china-SIDE with SIDE from 8 to 420 (e.g. china-64)")
    from sklearn.datasets import load_sample_image

    grey = load_sample_image("china.jpg").astype(np.float64).mean(axis=2) / 255.0  # (427, 640)
    side = int(match.group(1))
    block = 420 // side
    crop = grey[:side * block, 110:110 + side * block]  # a square around the temple
    return crop.reshape(side, block, side, block).mean(axis=(1, 3))


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * x


class Fourier(nn.Module):
    """gamma(v) = [sin(2 pi B v), cos(2 pi B v)], B fixed (a buffer, not a parameter)."""

    def __init__(self, features: int, scale: float) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("b", torch.randn(2, features, generator=generator) * scale)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        projected = 2 * math.pi * v @ self.b
        return torch.cat([projected.sin(), projected.cos()], dim=-1)


def fourier_scale(train_side: int) -> float:
    """Tancik's sigma = 10 for 256 training pixels a side on [0, 1], at our resolution and on
    [-1, 1]: the same frequencies per training pixel (a larger sigma interpolates noise)."""
    return FOURIER_SCALE * train_side / 256 / 2


def coordinate_mlp(act_layer, inputs: int, width: int, depth: int, fourier: float | None = None,
                   siren: bool = True) -> nn.Sequential:
    """``siren``: a sine activation gets SIREN's w0 and initialisation."""
    sine = siren and is_sine(act_layer)
    layers: list[nn.Module] = [Fourier(FOURIER_FEATURES, fourier)] if fourier else []
    fan_in = 2 * FOURIER_FEATURES if fourier else inputs
    multiplier = getattr(act_layer, "width_multiplier", 1)
    for i in range(depth):
        linear = nn.Linear(fan_in, multiplier * width)
        if sine:
            bound = 1 / fan_in if i == 0 else math.sqrt(6 / fan_in) / W0
            nn.init.uniform_(linear.weight, -bound, bound)
        layers += [linear, Scale(W0)] if sine else [linear]
        layers.append(act_layer(multiplier * width))
        fan_in = width
    out = nn.Linear(fan_in, 1)
    if sine:
        bound = math.sqrt(6 / fan_in) / W0
        nn.init.uniform_(out.weight, -bound, bound)
    return nn.Sequential(*layers, out)


class ImageFit(Workload):
    def __init__(self, name: str, size: str, side: int, width: int, depth: int, defaults: dict,
                 target: float) -> None:
        super().__init__(name, "inr", f"image fitting: coordinate MLP {depth}x{width} on a {side}x{side} grey "
                                      "photograph (model mlp, or mlp-pe with Fourier features)",
                         data=f"china-{side}", model="mlp", models=("mlp", "mlp-pe"),
                         primary=Metric("psnr", True, "dB"), size=size, target=target, defaults=defaults)
        self.width, self.depth = width, depth

    def owns(self, name: str) -> bool:
        return name.startswith("china-")

    def load_data(self, name: str) -> Prepared:
        grey = torch.as_tensor(image(name), dtype=torch.float32)
        side = grey.shape[0]
        axis = torch.linspace(-1, 1, side)
        coords = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
        levels = (2 * grey - 1).reshape(-1, 1)
        rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        seen = ((rows % 2 == 0) & (cols % 2 == 0)).reshape(-1)  # Tancik et al.: fit every other pixel
        train = Split(coords[seen].contiguous(), levels[seen].contiguous())
        test = Split(coords[~seen].contiguous(), levels[~seen].contiguous())  # the pixels in between
        return Prepared(name, (), train, test, None, (0.0,), (1.0,))

    def build(self, config, data: Prepared, act_layer) -> nn.Module:
        if config.model not in self.model_names:
            raise AfbenchError(f"the inr workload builds {' or '.join(self.model_names)}, not '{config.model}'")
        scale = fourier_scale(round(len(data.train) ** 0.5)) if config.model == "mlp-pe" else None
        return coordinate_mlp(act_layer, 2, self.width, self.depth, fourier=scale)

    def loss(self, forward, model, x, y):
        output = forward(model, x)
        return F.mse_loss(output, y), output

    @torch.inference_mode()
    def evaluate(self, model, split: Split) -> dict[str, float]:
        model.eval()
        mse = float(torch.cat([model(split.x[i:i + 4096]).float() for i in range(0, len(split), 4096)])
                    .sub(split.y).pow(2).mean())
        mse01 = mse / 4  # grey levels in [-1, 1] are twice those in [0, 1]
        return {"loss": mse, "psnr": 10 * math.log10(1 / max(mse01, 1e-12))}


def small() -> ImageFit:
    return ImageFit("inr", "small", 128, 128, 3, {"epochs": 40, "batch_size": 1024, "lr": 1e-3}, target=22.0)


def large() -> ImageFit:
    return ImageFit("inr-large", "large", 256, 256, 4, {"epochs": 200, "batch_size": 4096, "lr": 1e-4},
                    target=30.0)

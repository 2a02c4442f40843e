"""The activation registry: name -> how to build it, its closed-form derivative and
the properties the literature weighs (S3, S5 in PROTOCOLS.md).

Every factory takes ``num_features`` (the channel or feature count of the layer it
sits in; only per-channel learnable activations use it) and keyword parameters.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from afbench.activations import modules as m
from afbench.activations.spec import ActivationSpec
from afbench.activations.zoo import ZOO
from afbench.errors import lookup

Tensor = torch.Tensor

# SELU's fixed point constants (Klambauer et al. 2017), as torch.nn.SELU uses them.
SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _prelu(num_features: int | None = None, init: float = 0.25, per_channel: bool = True) -> nn.Module:
    # One slope per channel (He et al. 2015) unless asked for a single shared one.
    count = num_features if (per_channel and num_features) else 1
    return nn.PReLU(num_parameters=count, init=init)


def _d_sigmoid(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 - s)


def _d_elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), alpha * torch.exp(x.clamp(max=0)))


def _d_gelu(x: Tensor) -> Tensor:
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


def _d_gelu_tanh(x: Tensor) -> Tensor:
    u = _SQRT_2_OVER_PI * (x + 0.044715 * x**3)
    t = torch.tanh(u)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)


def _d_silu(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


def _d_mish(x: Tensor) -> Tensor:
    t = torch.tanh(F.softplus(x))
    return t + x * (1 - t * t) * torch.sigmoid(x)


def _step(x: Tensor, lo: float, hi: float, inside: Tensor | float) -> Tensor:
    """``inside`` where lo < x < hi, else 0."""
    inside = torch.as_tensor(inside, dtype=x.dtype) if not torch.is_tensor(inside) else inside
    return torch.where((x > lo) & (x < hi), inside, torch.zeros_like(x))


def _d_hard_swish(x: Tensor) -> Tensor:
    middle = torch.where((x > -3) & (x < 3), (2 * x + 3) / 6, torch.zeros_like(x))
    return torch.where(x >= 3, torch.ones_like(x), middle)


def _ones_where_positive(x: Tensor) -> Tensor:
    return (x > 0).to(x.dtype)


_HIDDEN: tuple[ActivationSpec, ...] = (
    ActivationSpec("identity", lambda n=None: nn.Identity(), torch.ones_like, "x", "(-inf, inf)", True, True, True,
          "none", "linear unit; collapses a net to one linear map (S3)", aliases=("linear", "none")),
    ActivationSpec("binary_step", lambda n=None: m.BinaryStep(), torch.zeros_like, "1 if x > 0 else 0", "{0, 1}",
          False, True, False, "both", "Heaviside step, perceptron (S3)", aliases=("step", "heaviside"),
          trainable=False,
          note="gradient is zero almost everywhere: layers below it never learn; runnable for comparison"),
    ActivationSpec("sigmoid", lambda n=None: nn.Sigmoid(), _d_sigmoid, "1 / (1 + exp(-x))", "(0, 1)", False, True,
          True, "both", "logistic function (S3, S5)", aliases=("logistic",)),
    ActivationSpec("hard_sigmoid", lambda n=None: nn.Hardsigmoid(), lambda x: _step(x, -3, 3, 1 / 6),
          "relu6(x + 3) / 6", "[0, 1]", False, True, False, "both",
          "Howard et al. 2019, MobileNetV3", aliases=("hardsigmoid",)),
    ActivationSpec("tanh", lambda n=None: nn.Tanh(), lambda x: 1 - torch.tanh(x) ** 2, "(e^x - e^-x) / (e^x + e^-x)",
          "(-1, 1)", True, True, True, "both", "hyperbolic tangent, = 2 sigmoid(2x) - 1 (S3, S5)"),
    ActivationSpec("relu", lambda n=None: nn.ReLU(), _ones_where_positive, "max(0, x)", "[0, inf)", False, True,
          False, "left", "Nair & Hinton 2010; Krizhevsky et al. 2012 (S5)"),
    ActivationSpec("relu6", lambda n=None: nn.ReLU6(), lambda x: _step(x, 0, 6, 1.0), "min(6, max(0, x))", "[0, 6]",
          False, True, False, "both", "Krizhevsky 2010 (S5)"),
    ActivationSpec("leaky_relu", lambda n=None, negative_slope=0.01: nn.LeakyReLU(negative_slope),
          lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, 0.01)),
          "x if x > 0 else 0.01 x", "(-inf, inf)", False, True, False, "none", "Maas et al. 2013 (S1, S3)",
          aliases=("lrelu", "leakyrelu"), defaults={"negative_slope": 0.01}),
    ActivationSpec("prelu", _prelu, lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, 0.25)),
          "x if x > 0 else a x, a learned (init 0.25)", "(-inf, inf)", False, True, False, "none",
          "He et al. 2015 (S1)", learnable=("weight",), defaults={"init": 0.25, "per_channel": True},
          note="slope learned per channel by default; excluded from weight decay; derivative shown at a = 0.25"),
    ActivationSpec("elu", lambda n=None, alpha=1.0: nn.ELU(alpha), _d_elu, "x if x > 0 else alpha (e^x - 1)",
          "(-alpha, inf)", False, True, True, "left", "Clevert et al. 2016 (S1)", defaults={"alpha": 1.0},
          note="mean activations closer to zero than ReLU; C1 only for alpha = 1"),
    ActivationSpec("selu", lambda n=None: nn.SELU(),
          lambda x: SELU_LAMBDA * torch.where(x > 0, torch.ones_like(x), SELU_ALPHA * torch.exp(x.clamp(max=0))),
          "lambda (x if x > 0 else alpha (e^x - 1))", "(-1.7581, inf)", True, True, False, "left",
          "Klambauer et al. 2017 (S1)", defaults={"lambda": SELU_LAMBDA, "alpha": SELU_ALPHA},
          note="self-normalising: zero mean, unit variance under LeCun-normal init"),
    ActivationSpec("celu", lambda n=None, alpha=1.0: nn.CELU(alpha), _d_elu, "max(0, x) + min(0, alpha (e^(x/alpha) - 1))",
          "(-alpha, inf)", False, True, True, "left", "Barron 2017", defaults={"alpha": 1.0}),
    ActivationSpec("gelu", lambda n=None: nn.GELU(), _d_gelu, "x Phi(x), Phi the standard normal CDF (erf form)",
          "[-0.17, inf)", False, False, True, "left", "Hendrycks & Gimpel 2016", aliases=("gelu_erf",)),
    ActivationSpec("gelu_tanh", lambda n=None: nn.GELU(approximate="tanh"), _d_gelu_tanh,
          "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))", "[-0.17, inf)", False, False, True, "left",
          "Hendrycks & Gimpel 2016 (tanh approximation)", aliases=("gelu_approx",)),
    ActivationSpec("silu", lambda n=None: nn.SiLU(), _d_silu, "x sigmoid(x)", "[-0.2785, inf)", False, False, True,
          "left", "Ramachandran et al. 2017; Elfwing et al. 2018 (S3, S5)", aliases=("swish",)),
    ActivationSpec("swish_beta", lambda n=None, beta=1.0: m.SwishBeta(beta), _d_silu, "x sigmoid(beta x), beta learned",
          "[-0.2785/beta, inf)", False, False, True, "left", "Ramachandran et al. 2017",
          learnable=("beta",), defaults={"beta": 1.0},
          note="beta starts at 1 and is learned; excluded from weight decay; derivative shown at beta = 1"),
    ActivationSpec("mish", lambda n=None: nn.Mish(), _d_mish, "x tanh(softplus(x))", "[-0.3088, inf)", False, False,
          True, "left", "Misra 2019 (S5)"),
    ActivationSpec("softplus", lambda n=None: nn.Softplus(), torch.sigmoid, "ln(1 + e^x)", "(0, inf)", False, True,
          True, "left", "Dugas et al. 2001 (S3)",
          note="computed as x for x > 20, so large |x| neither overflows nor loses precision"),
    ActivationSpec("softsign", lambda n=None: nn.Softsign(), lambda x: (1 + x.abs()).pow(-2), "x / (1 + |x|)",
          "(-1, 1)", True, True, True, "both", "Bergstra et al. 2009"),
    ActivationSpec("hard_swish", lambda n=None: nn.Hardswish(), _d_hard_swish, "x relu6(x + 3) / 6", "[-0.375, inf)",
          False, False, False, "left", "Howard et al. 2019, MobileNetV3", aliases=("hardswish", "hswish")),
    ActivationSpec("noisy_relu", lambda n=None, refresh_every=16: m.NoisyReLU(refresh_every), _ones_where_positive,
          "max(0, x + n), n ~ N(0, sigmoid(x)) in training; max(0, x) in eval", "[0, inf)", False, True,
          False, "left", "Nair & Hinton 2010, section 2.1",
          note="noise variance sigmoid(x) while training, from a normal bank redrawn every 16 calls; "
               "gradient treats the noise as a constant"),
    ActivationSpec("maxout", lambda n=None, k=2: m.Maxout(k), None, "max_j (w_j . x + b_j), j = 1..k",
          "(-inf, inf)", False, False, False, "none", "Goodfellow et al. 2013 (S3, S5)",
          defaults={"k": 2}, width_multiplier=2,
          note="not elementwise: the layer before produces k times the width (k pieces per unit)"),
    ActivationSpec("relu_softplus", lambda n=None: m.ReluSoftplus(), m.relu_softplus_grad,
          "x if x > 0 else ln(1 + e^x) - ln 2", "(-0.6931, inf)", False, True, False, "left",
          "S4 (J. Zhejiang Univ. Eng. Sci., 2019)", note="continuous at 0; slopes 0.5 (left) and 1 (right)"),
    ActivationSpec("relu_softsign", lambda n=None: m.ReluSoftsign(), m.relu_softsign_grad,
          "x if x > 0 else x / (1 + |x|)", "(-1, inf)", False, True, True, "left",
          "S4 (J. Zhejiang Univ. Eng. Sci., 2019)",
          note="negative side keeps a non-zero gradient, so units do not die; slope 1 on both sides of 0"),
)

_OUTPUT: tuple[ActivationSpec, ...] = (
    ActivationSpec("softmax", lambda n=None, dim=1: nn.Softmax(dim=dim), None, "e^x_i / sum_j e^x_j", "(0, 1), sums to 1",
          False, False, True, "both", "output layer for classification (S2, S3)", kind="output",
          note="output-only: afbench's models emit logits and the loss applies log-softmax"),
)

REGISTRY: dict[str, ActivationSpec] = {spec.name: spec for spec in _HIDDEN + ZOO + _OUTPUT}
_ALIASES: dict[str, str] = {alias: spec.name for spec in REGISTRY.values() for alias in spec.aliases}


def canonical(name: str) -> str:
    """The registered name for ``name`` (case-insensitive, aliases and '-' accepted)."""
    return lookup("activation", name, REGISTRY, _ALIASES,
                  hint=" Custom ones: 'module.path:Name' or a formula such as 'x * sigmoid(1.5 * x)'.")

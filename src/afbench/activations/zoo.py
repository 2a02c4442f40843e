"""The grown zoo (issue 17 and the gated units of issue 16): registry entries.

Positional fields of ActivationSpec: name, factory, derivative, formula, output_range,
zero_centred, monotonic, smooth, saturates, reference.
"""

from __future__ import annotations

import torch
from torch import nn

from afbench.activations import elementwise as e
from afbench.activations import fast
from afbench.activations.gated import Gated
from afbench.activations.learnable import PAU, AconC, StarReLU, pau_reference_derivative
from afbench.activations.spec import ActivationSpec

Tensor = torch.Tensor
RRELU_LOWER, RRELU_UPPER = 1 / 8, 1 / 3  # Xu et al. 2015; the eval slope is their mean, 11/48


def _band(x: Tensor, lo: float, hi: float) -> Tensor:
    """1 where lo < x < hi, else 0."""
    return ((x > lo) & (x < hi)).to(x.dtype)


def _outside(x: Tensor, lam: float) -> Tensor:
    """1 where |x| > lam, else 0 (the shrink functions' slope)."""
    return (x.abs() > lam).to(x.dtype)


def _d_silu(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


def _d_rrelu_eval(x: Tensor) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, (RRELU_LOWER + RRELU_UPPER) / 2))


def _rrelu(num_features=None, lower: float = RRELU_LOWER, upper: float = RRELU_UPPER) -> nn.Module:
    return fast.RReLU(lower, upper)


_HALVES = "; a, b = first and second half of the input on dim 1"


def _gated(gate: str, reference: str, formula: str) -> ActivationSpec:
    return ActivationSpec(gate, lambda n=None: Gated(gate), None, formula, "(-inf, inf)", False, False,
                          gate != "reglu", "none", reference, width_multiplier=2,
                          note="not elementwise: the layer before produces 2x the width; the first half "
                               "goes through the gate's activation and multiplies the second half (dim 1)")


_FIXED: tuple[ActivationSpec, ...] = (
    ActivationSpec("hardtanh", lambda n=None: nn.Hardtanh(), lambda x: _band(x, -1, 1), "clip(x, -1, 1)",
                   "[-1, 1]", True, True, False, "both", "Collobert 2004; torch.nn.Hardtanh",
                   aliases=("hard_tanh",)),
    ActivationSpec("tanhshrink", fast.module("tanhshrink"), lambda x: torch.tanh(x) ** 2, "x - tanh(x)",
                   "(-inf, inf)", True, True, True, "none", "torch.nn.Tanhshrink",
                   note="slope 0 at x = 0: small inputs barely pass"),
    ActivationSpec("softshrink", lambda n=None, lambd=0.5: nn.Softshrink(lambd), lambda x: _outside(x, 0.5),
                   "x - 0.5 if x > 0.5, x + 0.5 if x < -0.5, else 0", "(-inf, inf)", True, True, False, "none",
                   "Donoho 1995 (soft thresholding); torch.nn.Softshrink", defaults={"lambd": 0.5},
                   note="derivative shown at lambda = 0.5"),
    ActivationSpec("hardshrink", lambda n=None, lambd=0.5: nn.Hardshrink(lambd), lambda x: _outside(x, 0.5),
                   "x if |x| > 0.5 else 0", "(-inf, -0.5) U {0} U (0.5, inf)", True, False, False, "none",
                   "hard thresholding; torch.nn.Hardshrink", defaults={"lambd": 0.5},
                   note="jumps at +-0.5; derivative shown at lambda = 0.5"),
    ActivationSpec("logsigmoid", fast.module("logsigmoid"), lambda x: torch.sigmoid(-x), "ln(sigmoid(x))",
                   "(-inf, 0)", False, True, True, "right", "torch.nn.LogSigmoid (stable: min(x, 0) - ln(1 + e^-|x|))",
                   aliases=("log_sigmoid",)),
    ActivationSpec("elish", fast.module("elish"), e.d_elish,
                   "x sigmoid(x) if x >= 0 else (e^x - 1) sigmoid(x)", "[-0.1716, inf)", False, False, True, "left",
                   "Basirat and Roth 2018, arXiv:1808.00783"),
    ActivationSpec("hard_elish", fast.module("hard_elish"), e.d_hard_elish,
                   "x clip((x+1)/2, 0, 1) if x >= 0 else (e^x - 1) clip((x+1)/2, 0, 1)", "[-0.0997, inf)",
                   False, False, False, "left", "Basirat and Roth 2018, arXiv:1808.00783",
                   aliases=("hardelish",)),
    ActivationSpec("sqnl", fast.module("sqnl"), e.d_sqnl,
                   "1 if x > 2; x - x^2/4 on [0, 2]; x + x^2/4 on [-2, 0); -1 if x < -2", "[-1, 1]", True, True,
                   True, "both", "Wuraola and Patel 2018, IJCNN (square nonlinearity)"),
    ActivationSpec("isru", fast.module("isru"), e.d_isru, "x / sqrt(1 + x^2)", "(-1, 1)", True,
                   True, True, "both", "Carlile et al. 2017, arXiv:1710.09967 (alpha = 1)"),
    ActivationSpec("isrlu", fast.module("isrlu"), e.d_isrlu, "x if x >= 0 else x / sqrt(1 + x^2)",
                   "(-1, inf)", False, True, True, "left", "Carlile et al. 2017, arXiv:1710.09967 (alpha = 1)"),
    ActivationSpec("bent_identity", fast.module("bent_identity"),
                   e.d_bent_identity, "(sqrt(x^2 + 1) - 1) / 2 + x", "(-inf, inf)", False, True, True, "none",
                   "bent identity (e.g. Wikipedia's table of activation functions)", aliases=("bent",)),
    ActivationSpec("gaussian", fast.module("gaussian"), e.d_gaussian, "exp(-x^2)", "(0, 1]",
                   False, False, True, "both", "Gaussian radial basis unit (Broomhead and Lowe 1988)"),
    ActivationSpec("arctan", fast.module("arctan"), e.d_arctan,
                   "arctan(x)", "(-pi/2, pi/2)", True, True, True, "both", "inverse tangent", aliases=("atan",)),
    ActivationSpec("lisht", fast.module("lisht"), e.d_lisht, "x tanh(x)", "[0, inf)", False, False,
                   True, "none", "Roy et al. 2019, arXiv:1901.05894 (LiSHT)"),
    ActivationSpec("tanhexp", fast.module("tanhexp"), e.d_tanhexp, "x tanh(e^x)",
                   "[-0.3533, inf)", False, False, True, "left", "Liu and Di 2020, arXiv:2003.09855 (TanhExp)"),
    ActivationSpec("smish", fast.module("smish"), e.d_smish, "x tanh(ln(1 + sigmoid(x)))",
                   "[-0.2500, inf)", False, False, True, "left", "Wang et al. 2022, Electronics 11(4):540 (Smish)"),
    ActivationSpec("serf", fast.module("serf"), e.d_serf, "x erf(ln(1 + e^x))", "[-0.3484, inf)",
                   False, False, True, "left", "Nag and Bhattacharyya 2021, arXiv:2108.09598 (Serf)"),
    ActivationSpec("logish", fast.module("logish"), e.d_logish, "x ln(1 + sigmoid(x))",
                   "[-0.2528, inf)", False, False, True, "left", "Zhu et al. 2021, Neurocomputing 458 (Logish)"),
    ActivationSpec("squared_relu", fast.module("squared_relu"), e.d_squared_relu,
                   "max(0, x)^2", "[0, inf)", False, True, True, "left", "So et al. 2021, arXiv:2109.08668 (Primer)",
                   aliases=("relu_squared", "relu2")),
    ActivationSpec("shifted_softplus", fast.module("shifted_softplus"),
                   e.d_shifted_softplus, "ln(1 + e^x) - ln 2", "(-0.6931, inf)", False, True, True, "left",
                   "Schuett et al. 2017, SchNet (NeurIPS)", aliases=("ssp",)),
    ActivationSpec("rrelu", _rrelu, _d_rrelu_eval,
                   "x if x >= 0 else a x; a ~ U(1/8, 1/3) per element in training, a = 11/48 in eval",
                   "(-inf, inf)", False, True, False, "none",
                   "Xu et al. 2015, arXiv:1505.00853 (Empirical evaluation of rectified activations)",
                   aliases=("randomized_relu",), defaults={"lower": RRELU_LOWER, "upper": RRELU_UPPER},
                   note="torch.nn.RReLU; derivative shown in eval mode (slope 11/48)"),
)

_LEARNABLE: tuple[ActivationSpec, ...] = (
    ActivationSpec("acon_c", lambda n=None, per_channel=True: AconC(n, per_channel), _d_silu,
                   "(p1 - p2) x sigmoid(beta (p1 - p2) x) + p2 x; p1, p2, beta learned per channel",
                   "(-inf, inf)", False, False, True, "none", "Ma et al. 2021, CVPR (Activate or Not: ACON-C)",
                   aliases=("aconc",), learnable=("p1", "p2", "beta"), defaults={"per_channel": True},
                   note="starts as Swish (p1 = 1, p2 = 0, beta = 1); excluded from weight decay; "
                        "derivative shown at the initialisation"),
    ActivationSpec("star_relu", lambda n=None, scale=0.8944, bias=-0.4472: StarReLU(scale, bias),
                   lambda x: 2 * 0.8944 * x.clamp(min=0), "s max(0, x)^2 + b; s, b learned scalars",
                   "[-0.4472, inf)", False, True, True, "left", "Yu et al. 2022, arXiv:2210.13452 (MetaFormer)",
                   aliases=("starrelu",), learnable=("scale", "bias"), defaults={"scale": 0.8944, "bias": -0.4472},
                   note="s = 0.8944, b = -0.4472 at start (unit variance for N(0, 1) input); excluded from "
                        "weight decay; derivative shown at the initialisation"),
    ActivationSpec("pau", lambda n=None, per_channel=False: PAU(n, per_channel), pau_reference_derivative,
                   "(a0 + a1 x + ... + a5 x^5) / (1 + |b1||x| + ... + |b4||x|^4), a and b learned",
                   "(-inf, inf)", False, False, False, "none",
                   "Molina et al. 2020, ICLR (Pade Activation Units), safe PAU",
                   aliases=("pade",), learnable=("numerator", "denominator"), defaults={"per_channel": False},
                   note="starts as a least-squares fit of leaky ReLU on [-3, 3]; shared per layer "
                        "(per_channel=True: one set per channel); excluded from weight decay; derivative "
                        "shown at the initialisation; not C1 at 0 while b1 != 0"),
)

_GATED: tuple[ActivationSpec, ...] = (
    _gated("glu", "Dauphin et al. 2017; Shazeer 2020, arXiv:2002.05202", f"sigmoid(a) * b{_HALVES}"),
    _gated("reglu", "Shazeer 2020, arXiv:2002.05202", f"relu(a) * b{_HALVES}"),
    _gated("geglu", "Shazeer 2020, arXiv:2002.05202", f"gelu(a) * b{_HALVES}"),
    _gated("swiglu", "Shazeer 2020, arXiv:2002.05202", f"swish(a) * b{_HALVES}"),
)

ZOO: tuple[ActivationSpec, ...] = _FIXED + _LEARNABLE + _GATED

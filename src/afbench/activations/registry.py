"""The activation table: every registered activation in one place, each row with how to
build it, its closed-form derivative (derivatives.py), the properties the literature
weighs (S3, S5 in PROTOCOLS.md) and its speed tier (what runs it: torch's module,
afbench's eager module, a fused pair, a compiled or a native kernel; see
``ActivationSpec.speed``).

Every factory takes ``num_features`` (the channel or feature count of the layer it
sits in; only per-channel learnable activations use it) and keyword parameters.
Positional fields of ActivationSpec: name, factory, derivative, formula, output_range,
zero_centred, monotonic, smooth, saturates, reference.

Installed packages add rows through the entry-point group ``afbench.activations``
(plugins.py): an ``ActivationSpec``, an ``nn.Module`` class or a function of a tensor.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from afbench.activations import derivatives as d
from afbench.activations import fast
from afbench.activations import modules as m
from afbench.activations.custom import required_arguments
from afbench.activations.gated import Gated
from afbench.activations.learnable import PAU, AconC, StarReLU
from afbench.activations.spec import ActivationSpec
from afbench.errors import AfbenchError
from afbench.plugins import Registry

Tensor = torch.Tensor


def _prelu(num_features: int | None = None, init: float = 0.25, per_channel: bool = True) -> nn.Module:
    # One slope per channel (He et al. 2015) unless asked for a single shared one.
    count = num_features if (per_channel and num_features) else 1
    return nn.PReLU(num_parameters=count, init=init)


def _rrelu(num_features=None, lower: float = d.RRELU_LOWER, upper: float = d.RRELU_UPPER) -> nn.Module:
    return fast.RReLU(lower, upper)


# ---- the first zoo: torch's activations and the studies' own (S1-S5) -----------------------------------

_HIDDEN: tuple[ActivationSpec, ...] = (
    ActivationSpec("identity", lambda n=None: nn.Identity(), torch.ones_like, "x", "(-inf, inf)", True, True, True,
          "none", "linear unit; collapses a net to one linear map (S3)", aliases=("linear", "none"), speed="torch"),
    ActivationSpec("binary_step", lambda n=None: m.BinaryStep(), torch.zeros_like, "1 if x > 0 else 0", "{0, 1}",
          False, True, False, "both", "Heaviside step, perceptron (S3)", aliases=("step", "heaviside"),
          trainable=False,
          note="gradient is zero almost everywhere: layers below it never learn; runnable for comparison",
          speed="eager"),
    ActivationSpec("sigmoid", lambda n=None: nn.Sigmoid(), d.d_sigmoid, "1 / (1 + exp(-x))", "(0, 1)", False, True,
          True, "both", "logistic function (S3, S5)", aliases=("logistic",), speed="torch"),
    ActivationSpec("hard_sigmoid", lambda n=None: nn.Hardsigmoid(), lambda x: d.band(x, -3, 3, 1 / 6),
          "relu6(x + 3) / 6", "[0, 1]", False, True, False, "both",
          "Howard et al. 2019, MobileNetV3", aliases=("hardsigmoid",), speed="torch"),
    ActivationSpec("tanh", lambda n=None: nn.Tanh(), d.d_tanh, "(e^x - e^-x) / (e^x + e^-x)",
          "(-1, 1)", True, True, True, "both", "hyperbolic tangent, = 2 sigmoid(2x) - 1 (S3, S5)", speed="torch"),
    ActivationSpec("relu", lambda n=None: nn.ReLU(), d.ones_where_positive, "max(0, x)", "[0, inf)", False, True,
          False, "left", "Nair & Hinton 2010; Krizhevsky et al. 2012 (S5)", speed="torch"),
    ActivationSpec("relu6", lambda n=None: nn.ReLU6(), lambda x: d.band(x, 0, 6), "min(6, max(0, x))", "[0, 6]",
          False, True, False, "both", "Krizhevsky 2010 (S5)", speed="torch"),
    ActivationSpec("leaky_relu", lambda n=None, negative_slope=0.01: nn.LeakyReLU(negative_slope),
          lambda x: d.slopes(x, 0.01),
          "x if x > 0 else 0.01 x", "(-inf, inf)", False, True, False, "none", "Maas et al. 2013 (S1, S3)",
          aliases=("lrelu", "leakyrelu"), defaults={"negative_slope": 0.01}, speed="torch"),
    ActivationSpec("prelu", _prelu, lambda x: d.slopes(x, 0.25),
          "x if x > 0 else a x, a learned (init 0.25)", "(-inf, inf)", False, True, False, "none",
          "He et al. 2015 (S1)", learnable=("weight",), defaults={"init": 0.25, "per_channel": True},
          note="slope learned per channel by default; excluded from weight decay; derivative shown at a = 0.25",
          speed="torch"),
    ActivationSpec("elu", lambda n=None, alpha=1.0: nn.ELU(alpha), d.d_elu, "x if x > 0 else alpha (e^x - 1)",
          "(-alpha, inf)", False, True, True, "left", "Clevert et al. 2016 (S1)", defaults={"alpha": 1.0},
          note="mean activations closer to zero than ReLU; C1 only for alpha = 1", speed="torch"),
    ActivationSpec("selu", lambda n=None: nn.SELU(),
          d.d_selu,
          "lambda (x if x > 0 else alpha (e^x - 1))", "(-1.7581, inf)", True, True, False, "left",
          "Klambauer et al. 2017 (S1)", defaults={"lambda": d.SELU_LAMBDA, "alpha": d.SELU_ALPHA},
          note="self-normalising: zero mean, unit variance under LeCun-normal init", speed="torch"),
    ActivationSpec("celu", lambda n=None, alpha=1.0: nn.CELU(alpha), d.d_elu,
          "max(0, x) + min(0, alpha (e^(x/alpha) - 1))", "(-alpha, inf)", False, True, True, "left",
          "Barron 2017", defaults={"alpha": 1.0}, speed="torch"),
    ActivationSpec("gelu", lambda n=None: nn.GELU(), d.d_gelu, "x Phi(x), Phi the standard normal CDF (erf form)",
          "[-0.17, inf)", False, False, True, "left", "Hendrycks & Gimpel 2016", aliases=("gelu_erf",),
          speed="torch"),
    ActivationSpec("gelu_tanh", lambda n=None: nn.GELU(approximate="tanh"), d.d_gelu_tanh,
          "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))", "[-0.17, inf)", False, False, True, "left",
          "Hendrycks & Gimpel 2016 (tanh approximation)", aliases=("gelu_approx",), speed="torch"),
    ActivationSpec("silu", lambda n=None: nn.SiLU(), d.d_silu, "x sigmoid(x)", "[-0.2785, inf)", False, False, True,
          "left", "Ramachandran et al. 2017; Elfwing et al. 2018 (S3, S5)", aliases=("swish",),
          speed="torch"),
    ActivationSpec("swish_beta", lambda n=None, beta=1.0: m.SwishBeta(beta), d.d_silu, "x sigmoid(beta x), beta learned",
          "[-0.2785/beta, inf)", False, False, True, "left", "Ramachandran et al. 2017",
          learnable=("beta",), defaults={"beta": 1.0},
          note="beta starts at 1 and is learned; excluded from weight decay; derivative shown at beta = 1",
          speed="eager"),
    ActivationSpec("mish", lambda n=None: nn.Mish(), d.d_mish, "x tanh(softplus(x))", "[-0.3088, inf)", False, False,
          True, "left", "Misra 2019 (S5)", speed="torch"),
    ActivationSpec("softplus", lambda n=None: nn.Softplus(), torch.sigmoid, "ln(1 + e^x)", "(0, inf)", False, True,
          True, "left", "Dugas et al. 2001 (S3)",
          note="computed as x for x > 20, so large |x| neither overflows nor loses precision", speed="torch"),
    ActivationSpec("softsign", lambda n=None: nn.Softsign(), d.d_softsign, "x / (1 + |x|)",
          "(-1, 1)", True, True, True, "both", "Bergstra et al. 2009", speed="torch"),
    ActivationSpec("hard_swish", lambda n=None: nn.Hardswish(), d.d_hard_swish, "x relu6(x + 3) / 6", "[-0.375, inf)",
          False, False, False, "left", "Howard et al. 2019, MobileNetV3", aliases=("hardswish", "hswish"),
          speed="torch"),
    ActivationSpec("noisy_relu", lambda n=None, refresh_every=16: m.NoisyReLU(refresh_every), d.ones_where_positive,
          "max(0, x + n), n ~ N(0, sigmoid(x)) in training; max(0, x) in eval", "[0, inf)", False, True,
          False, "left", "Nair & Hinton 2010, section 2.1",
          note="noise variance sigmoid(x) while training, from a normal bank redrawn every 16 calls; "
               "gradient treats the noise as a constant", speed="eager"),
    ActivationSpec("maxout", lambda n=None, k=2: m.Maxout(k), None, "max_j (w_j . x + b_j), j = 1..k",
          "(-inf, inf)", False, False, False, "none", "Goodfellow et al. 2013 (S3, S5)",
          defaults={"k": 2}, width_multiplier=2,
          note="not elementwise: the layer before produces k times the width (k pieces per unit)", speed="eager"),
    ActivationSpec("relu_softplus", lambda n=None: m.ReluSoftplus(), d.d_relu_softplus,
          "x if x > 0 else ln(1 + e^x) - ln 2", "(-0.6931, inf)", False, True, False, "left",
          "S4 (J. Zhejiang Univ. Eng. Sci., 2019)", note="continuous at 0; slopes 0.5 (left) and 1 (right)",
          speed="eager"),
    ActivationSpec("relu_softsign", lambda n=None: m.ReluSoftsign(), d.d_relu_softsign,
          "x if x > 0 else x / (1 + |x|)", "(-1, inf)", False, True, True, "left",
          "S4 (J. Zhejiang Univ. Eng. Sci., 2019)",
          note="negative side keeps a non-zero gradient, so units do not die; slope 1 on both sides of 0",
          speed="eager"),
)

_OUTPUT: tuple[ActivationSpec, ...] = (
    ActivationSpec("softmax", lambda n=None, dim=1: nn.Softmax(dim=dim), None, "e^x_i / sum_j e^x_j", "(0, 1), sums to 1",
          False, False, True, "both", "output layer for classification (S2, S3)", kind="output",
          note="output-only: afbench's models emit logits and the loss applies log-softmax", speed="torch"),
)


_HALVES = "; a, b = first and second half of the input on dim 1"


def _gated(gate: str, reference: str, formula: str, speed: str = "eager") -> ActivationSpec:
    return ActivationSpec(gate, lambda n=None: Gated(gate), None, formula, "(-inf, inf)", False, False,
                          gate != "reglu", "none", reference, width_multiplier=2, speed=speed,
                          note="not elementwise: the layer before produces 2x the width; the first half "
                               "goes through the gate's activation and multiplies the second half (dim 1)")


# ---- the grown zoo (issue 17; the gated units of issue 16) ---------------------------------------------

_FIXED: tuple[ActivationSpec, ...] = (
    ActivationSpec("hardtanh", lambda n=None: nn.Hardtanh(), lambda x: d.band(x, -1, 1), "clip(x, -1, 1)",
                   "[-1, 1]", True, True, False, "both", "Collobert 2004; torch.nn.Hardtanh",
                   aliases=("hard_tanh",), speed="torch"),
    ActivationSpec("tanhshrink", fast.module("tanhshrink"), lambda x: torch.tanh(x) ** 2, "x - tanh(x)",
                   "(-inf, inf)", True, True, True, "none", "torch.nn.Tanhshrink",
                   note="slope 0 at x = 0: small inputs barely pass", speed="native"),
    ActivationSpec("softshrink", lambda n=None, lambd=0.5: nn.Softshrink(lambd), lambda x: d.outside(x, 0.5),
                   "x - 0.5 if x > 0.5, x + 0.5 if x < -0.5, else 0", "(-inf, inf)", True, True, False, "none",
                   "Donoho 1995 (soft thresholding); torch.nn.Softshrink", defaults={"lambd": 0.5},
                   note="derivative shown at lambda = 0.5", speed="torch"),
    ActivationSpec("hardshrink", lambda n=None, lambd=0.5: nn.Hardshrink(lambd), lambda x: d.outside(x, 0.5),
                   "x if |x| > 0.5 else 0", "(-inf, -0.5) U {0} U (0.5, inf)", True, False, False, "none",
                   "hard thresholding; torch.nn.Hardshrink", defaults={"lambd": 0.5},
                   note="jumps at +-0.5; derivative shown at lambda = 0.5", speed="torch"),
    ActivationSpec("logsigmoid", fast.module("logsigmoid"), lambda x: torch.sigmoid(-x), "ln(sigmoid(x))",
                   "(-inf, 0)", False, True, True, "right", "torch.nn.LogSigmoid (stable: min(x, 0) - ln(1 + e^-|x|))",
                   aliases=("log_sigmoid",), speed="compiled"),
    ActivationSpec("elish", fast.module("elish"), d.d_elish,
                   "x sigmoid(x) if x >= 0 else (e^x - 1) sigmoid(x)", "[-0.1716, inf)", False, False, True, "left",
                   "Basirat and Roth 2018, arXiv:1808.00783", speed="compiled"),
    ActivationSpec("hard_elish", fast.module("hard_elish"), d.d_hard_elish,
                   "x clip((x+1)/2, 0, 1) if x >= 0 else (e^x - 1) clip((x+1)/2, 0, 1)", "[-0.0997, inf)",
                   False, False, False, "left", "Basirat and Roth 2018, arXiv:1808.00783",
                   aliases=("hardelish",), speed="compiled"),
    ActivationSpec("sqnl", fast.module("sqnl"), d.d_sqnl,
                   "1 if x > 2; x - x^2/4 on [0, 2]; x + x^2/4 on [-2, 0); -1 if x < -2", "[-1, 1]", True, True,
                   True, "both", "Wuraola and Patel 2018, IJCNN (square nonlinearity)", speed="fused"),
    ActivationSpec("isru", fast.module("isru"), d.d_isru, "x / sqrt(1 + x^2)", "(-1, 1)", True,
                   True, True, "both", "Carlile et al. 2017, arXiv:1710.09967 (alpha = 1)", speed="fused"),
    ActivationSpec("isrlu", fast.module("isrlu"), d.d_isrlu, "x if x >= 0 else x / sqrt(1 + x^2)",
                   "(-1, inf)", False, True, True, "left", "Carlile et al. 2017, arXiv:1710.09967 (alpha = 1)",
                   speed="fused"),
    ActivationSpec("bent_identity", fast.module("bent_identity"),
                   d.d_bent_identity, "(sqrt(x^2 + 1) - 1) / 2 + x", "(-inf, inf)", False, True, True, "none",
                   "bent identity (e.g. Wikipedia's table of activation functions)", aliases=("bent",), speed="fused"),
    ActivationSpec("gaussian", fast.module("gaussian"), d.d_gaussian, "exp(-x^2)", "(0, 1]",
                   False, False, True, "both", "Gaussian radial basis unit (Broomhead and Lowe 1988)", speed="fused"),
    ActivationSpec("arctan", fast.module("arctan"), d.d_arctan,
                   "arctan(x)", "(-pi/2, pi/2)", True, True, True, "both", "inverse tangent", aliases=("atan",),
                   speed="compiled"),
    ActivationSpec("lisht", fast.module("lisht"), d.d_lisht, "x tanh(x)", "[0, inf)", False, False,
                   True, "none", "Roy et al. 2019, arXiv:1901.05894 (LiSHT)", speed="native"),
    ActivationSpec("tanhexp", fast.module("tanhexp"), d.d_tanhexp, "x tanh(e^x)",
                   "[-0.3533, inf)", False, False, True, "left", "Liu and Di 2020, arXiv:2003.09855 (TanhExp)",
                   speed="native"),
    ActivationSpec("smish", fast.module("smish"), d.d_smish, "x tanh(ln(1 + sigmoid(x)))",
                   "[-0.2500, inf)", False, False, True, "left", "Wang et al. 2022, Electronics 11(4):540 (Smish)",
                   speed="compiled"),
    ActivationSpec("serf", fast.module("serf"), d.d_serf, "x erf(ln(1 + e^x))", "[-0.3484, inf)",
                   False, False, True, "left", "Nag and Bhattacharyya 2021, arXiv:2108.09598 (Serf)", speed="native"),
    ActivationSpec("logish", fast.module("logish"), d.d_logish, "x ln(1 + sigmoid(x))",
                   "[-0.2528, inf)", False, False, True, "left", "Zhu et al. 2021, Neurocomputing 458 (Logish)",
                   speed="compiled"),
    ActivationSpec("squared_relu", fast.module("squared_relu"), d.d_squared_relu,
                   "max(0, x)^2", "[0, inf)", False, True, True, "left", "So et al. 2021, arXiv:2109.08668 (Primer)",
                   aliases=("relu_squared", "relu2"), speed="fused"),
    ActivationSpec("shifted_softplus", fast.module("shifted_softplus"),
                   d.d_shifted_softplus, "ln(1 + e^x) - ln 2", "(-0.6931, inf)", False, True, True, "left",
                   "Schuett et al. 2017, SchNet (NeurIPS)", aliases=("ssp",), speed="compiled"),
    ActivationSpec("rrelu", _rrelu, d.d_rrelu_eval,
                   "x if x >= 0 else a x; a ~ U(1/8, 1/3) per element in training, a = 11/48 in eval",
                   "(-inf, inf)", False, True, False, "none",
                   "Xu et al. 2015, arXiv:1505.00853 (Empirical evaluation of rectified activations)",
                   aliases=("randomized_relu",), defaults={"lower": d.RRELU_LOWER, "upper": d.RRELU_UPPER},
                   note="torch.nn.RReLU; derivative shown in eval mode (slope 11/48)", speed="compiled"),
)

_LEARNABLE: tuple[ActivationSpec, ...] = (
    ActivationSpec("acon_c", lambda n=None, per_channel=True: AconC(n, per_channel), d.d_silu,
                   "(p1 - p2) x sigmoid(beta (p1 - p2) x) + p2 x; p1, p2, beta learned per channel",
                   "(-inf, inf)", False, False, True, "none", "Ma et al. 2021, CVPR (Activate or Not: ACON-C)",
                   aliases=("aconc",), learnable=("p1", "p2", "beta"), defaults={"per_channel": True},
                   note="starts as Swish (p1 = 1, p2 = 0, beta = 1); excluded from weight decay; "
                        "derivative shown at the initialisation", speed="native"),
    ActivationSpec("star_relu", lambda n=None, scale=0.8944, bias=-0.4472: StarReLU(scale, bias),
                   d.d_star_relu, "s max(0, x)^2 + b; s, b learned scalars",
                   "[-0.4472, inf)", False, True, True, "left", "Yu et al. 2022, arXiv:2210.13452 (MetaFormer)",
                   aliases=("starrelu",), learnable=("scale", "bias"), defaults={"scale": 0.8944, "bias": -0.4472},
                   note="s = 0.8944, b = -0.4472 at start (unit variance for N(0, 1) input); excluded from "
                        "weight decay; derivative shown at the initialisation", speed="compiled"),
    ActivationSpec("pau", lambda n=None, per_channel=False: PAU(n, per_channel), d.d_pau,
                   "(a0 + a1 x + ... + a5 x^5) / (1 + |b1||x| + ... + |b4||x|^4), a and b learned",
                   "(-inf, inf)", False, False, False, "none",
                   "Molina et al. 2020, ICLR (Pade Activation Units), safe PAU",
                   aliases=("pade",), learnable=("numerator", "denominator"), defaults={"per_channel": False},
                   note="starts as a least-squares fit of leaky ReLU on [-3, 3]; shared per layer "
                        "(per_channel=True: one set per channel); excluded from weight decay; derivative "
                        "shown at the initialisation; not C1 at 0 while b1 != 0", speed="compiled"),
)

_GATED: tuple[ActivationSpec, ...] = (
    _gated("glu", "Dauphin et al. 2017; Shazeer 2020, arXiv:2002.05202", f"sigmoid(a) * b{_HALVES}"),
    _gated("reglu", "Shazeer 2020, arXiv:2002.05202", f"relu(a) * b{_HALVES}"),
    _gated("geglu", "Shazeer 2020, arXiv:2002.05202", f"gelu(a) * b{_HALVES}", speed="native"),
    _gated("swiglu", "Shazeer 2020, arXiv:2002.05202", f"swish(a) * b{_HALVES}"),
)


ZOO: tuple[ActivationSpec, ...] = _FIXED + _LEARNABLE + _GATED  # issue 17's additions (bench/activations.py)


def plugin_spec(name: str, obj: object) -> ActivationSpec:
    """A row for what an ``afbench.activations`` entry point names: an ``ActivationSpec``
    as is; an nn.Module class (built with no arguments) or a
    function of a tensor, with its properties unknown (shown as such)."""
    if isinstance(obj, ActivationSpec):
        return obj
    if inspect.isclass(obj) and issubclass(obj, nn.Module):
        required = required_arguments(obj)
        if required:
            raise AfbenchError(f"{obj.__qualname__}.__init__ requires {', '.join(required)}, but afbench builds an "
                               f"activation with no arguments; give {', '.join(required)} a default")
        factory = lambda n=None, **params: obj(**params)  # noqa: E731
    elif callable(obj) and not inspect.isclass(obj):
        factory = lambda n=None: m.Lambda(obj, name)  # noqa: E731
    else:
        raise AfbenchError(f"{obj!r} is neither an ActivationSpec, an nn.Module class nor a function of a tensor")
    reference = f"plugin: {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', name)}"
    return ActivationSpec(name, factory, None, "unknown", "unknown", False, False, False, "unknown", reference,
                          speed="eager", note="from an installed package; properties not stated")


REGISTRY: Registry[ActivationSpec] = Registry("activations", adapt=plugin_spec)
for _spec in _HIDDEN + ZOO + _OUTPUT:
    REGISTRY.register(_spec.name, _spec, _spec.aliases)


def canonical(name: str) -> str:
    """The registered name for ``name`` (case-insensitive, aliases and '-' accepted)."""
    return REGISTRY.canonical(name, hint=" Custom ones: 'module.path:Name' or a formula such as "
                                         "'x * sigmoid(1.5 * x)'; or install a package with an "
                                         "'afbench.activations' entry point.")

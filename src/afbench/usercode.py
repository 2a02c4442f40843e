"""One place for bad user code: every model, activation and data set a sweep names that
afbench did not write (``PATH.py:NAME`` and ``package.module:NAME`` models, ``module:Name``
activations, formulas, installed plugins) is checked once, here, before anything is
queued: built, run forward and backward on one real batch, its output's shape, dtype and
finiteness checked, its parameters present. A failure is one ``UserCodeError`` naming
the file, the name and the fix, instead of a traceback in the middle of a sweep.

The sweep calls ``check(configs, data_for)`` once, after resolving the configs and before
queueing them; ``data_for(config)`` gives the prepared data the run would train on.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from afbench import activations, models
from afbench.config import RunConfig
from afbench.errors import AfbenchError

BATCH = 8  # images of the real training split that the check runs
# (N, C): where activations live at initialisation, with 0 and both signs near it (an even
# grid skips 0, and '1/x' or sqrt(abs(x))'s gradient passed it), sorted
PROBE = torch.cat([torch.linspace(-6, 6, 4 * 24 - 7),
                   torch.tensor([0.0, -1e-6, 1e-6, -1e-3, 1e-3, -1e-2, 1e-2])]).sort().values.reshape(4, 24)


class UserCodeError(AfbenchError):
    """User code failed its check before the sweep started: the message names the file,
    the name and the fix."""


# ---- where user code lives --------------------------------------------------------------------------------

def _activation_is_user_code(name: str) -> bool:
    """Formulas, module:Name and installed plugins; the activation table's own rows are afbench's."""
    try:
        spec = activations.info(name)
    except AfbenchError:
        return True
    return activations.REGISTRY.origin(spec.name) is not None


def _model_is_user_code(name: str) -> bool:
    return models.is_user_model(name) or name not in models.MODELS


def _activation_file(name: str) -> str:
    """Where an activation's code is: its module's file, the plugin's module, or 'a formula'."""
    try:
        origin = activations.REGISTRY.origin(activations.info(name).name)  # a plugin's 'module:attr'
    except AfbenchError:
        origin = name.strip() if re.fullmatch(r"[\w.]+:\w+", name.strip()) else None
    if origin is None:
        return "a formula"
    target = origin.split(":", 1)[0]
    with contextlib.suppress(Exception):
        return str(Path(importlib.import_module(target).__file__).resolve())
    return f"module {target}"


def _model_file(name: str) -> str:
    with contextlib.suppress(Exception):
        if models.is_user_model(name):
            return models.user.identity(name).rsplit(":", 1)[0] if name.split(":")[0].endswith(".py") else \
                str(inspect.getsourcefile(models.user.load(name)[0]))
        origin = models.REGISTRY.origin(models.REGISTRY.canonical(name))
        if origin:
            return str(inspect.getsourcefile(importlib.import_module(origin.split(":")[0])))
    return name


def _fail(what: str, name: str, where: str, problem: str, fix: str) -> UserCodeError:
    place = f" ({where})" if where and where != name else ""
    return UserCodeError(f"{what} '{name}'{place}: {problem}. Fix: {fix}")


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


# ---- activations ------------------------------------------------------------------------------------------

def check_activations(names: Iterable[str]) -> None:
    """``check_activation`` for each user activation among ``names`` (afbench's own are known good):
    every command that takes --activations checks them before it computes anything."""
    for name in dict.fromkeys(names):
        if _activation_is_user_code(name):
            check_activation(name)


def check_activation(name: str) -> None:
    """Build activation ``name`` and run it on a (4, 24) float32 tensor spanning [-6, 6]:
    same shape (or the gated units' half width), a floating dtype equal to the input's,
    finite values and a finite gradient."""
    where = _activation_file(name)
    fail = lambda problem, fix: _fail("activation", name, where, problem, fix)  # noqa: E731
    try:
        act = activations.factory(name)
        module = act(PROBE.shape[1])
    except TypeError as err:
        needed = _required_arguments(err)
        raise fail(f"building it failed: {_describe(err)}",
                   f"afbench builds an activation with no arguments: give {needed or 'its arguments'} a "
                   "default in __init__ (def __init__(self, alpha=1.0))") from None
    except AfbenchError as err:
        raise UserCodeError(str(err)) from None
    except TimeoutError:  # the sweep's time limit: the caller says what it means
        raise
    except Exception as err:
        raise fail(f"building it raised {_describe(err)}", "make its constructor work with no arguments") from None
    if not isinstance(module, nn.Module):
        raise fail(f"building it gave {type(module).__name__}, not an nn.Module",
                   "give an nn.Module class or a function of a tensor")
    x = PROBE.repeat(1, act.width_multiplier).clone().requires_grad_(True)
    try:
        y = module(x)
    except TimeoutError:  # the sweep's time limit: the caller says what it means
        raise
    except Exception as err:
        raise fail(f"it raised {_describe(err)} on a float32 tensor of shape {tuple(x.shape)}",
                   "make forward take any (batch, features) or (batch, channels, H, W) float tensor") from None
    if not torch.is_tensor(y):
        raise fail(f"it returned {type(y).__name__}, not a tensor", "return a tensor shaped like the input")
    if not y.dtype.is_floating_point:
        raise fail(f"its output is {str(y.dtype).removeprefix('torch.')}, not a floating-point tensor",
                   "return floats: a comparison such as x > 0 gives booleans; write where(x > 0, x, 0 * x) "
                   "or multiply by 1.0")
    expected = tuple(PROBE.shape)
    if tuple(y.shape) != expected or y.dtype != x.dtype:
        raise fail(f"it maps a {tuple(x.shape)} float32 tensor to {tuple(y.shape)} "
                   f"{str(y.dtype).removeprefix('torch.')}",
                   "act elementwise: one value per input element, in the input's dtype")
    if not torch.isfinite(y).all():
        at = x[~torch.isfinite(y)].flatten()[0].item()
        raise fail(f"it gives NaN or inf on inputs in [-6, 6] (at x = {at:g})",
                   "keep it finite for every input (clamp before exp, log of a positive number)")
    if y.requires_grad:
        _backward(y.sum(), fail, "activation", [x])


def _required_arguments(err: TypeError) -> str:
    """'alpha' from "__init__() missing 1 required positional argument: 'alpha'"."""
    text = str(err)
    return text.split("argument:", 1)[1].strip() if "argument:" in text else \
        text.split("arguments:", 1)[1].strip() if "arguments:" in text else ""


def _backward(loss: torch.Tensor, fail, what: str, inputs: list[torch.Tensor]) -> None:
    try:
        loss.backward()
    except TimeoutError:  # the sweep's time limit: the caller says what it means
        raise
    except Exception as err:
        raise fail(f"its backward pass raised {_describe(err)}",
                   f"build the {what} from differentiable torch operations") from None
    for tensor in inputs:
        if tensor.grad is not None and not torch.isfinite(tensor.grad).all():
            raise fail("its gradient is NaN or inf", f"keep the {what}'s derivative finite")


# ---- models -----------------------------------------------------------------------------------------------

def check_model(config: RunConfig, data) -> None:
    """Build the run's model as the engine does and train one step's worth on ``BATCH``
    images of ``data`` (a ``data.Prepared``): parameters present, output (N, classes)
    floating and finite, a finite loss and gradients that reach the parameters. The
    random state of the caller is left as it was (the runs seed their own)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        _check_model(config, data)


def _check_model(config: RunConfig, data) -> None:
    name = config.model
    where = _model_file(name)
    fail = lambda problem, fix: _fail("model", name, where, problem, fix)  # noqa: E731
    try:
        model = _build(config, data, config.activation)
    except AfbenchError as err:  # models.build's own checks name the model and the fix
        raise UserCodeError(f"{err} (model '{name}', activation '{config.activation}')") from None
    except TimeoutError:  # the sweep's time limit: the caller says what it means
        raise
    except Exception as err:
        raise fail(f"building it with activation '{config.activation}' raised {_describe(err)}",
                   "make the builder return an nn.Module for any activation") from None
    trainable = [p for p in model.parameters() if p.requires_grad]  # never empty: models.build refuses that
    x, y = data.train.x[:BATCH], data.train.y[:BATCH]
    device = trainable[0].device
    model = model.to(x.device if device.type == "meta" else device).train()
    shape = ", ".join(map(str, x.shape))
    try:
        out = model(x.to(trainable[0].device))
    except TimeoutError:  # the sweep's time limit: the caller says what it means
        raise
    except Exception as err:
        raise fail(f"its forward pass raised {_describe(err)} on a training batch of shape ({shape})",
                   f"make forward take float images (batch, {', '.join(map(str, data.input_shape))}) and "
                   f"return logits (batch, {data.num_classes})") from None
    if not torch.is_tensor(out) or tuple(out.shape) != (len(x), data.num_classes):
        got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise fail(f"it returned {got} for a batch of shape ({shape})",
                   f"return logits of shape (batch, {data.num_classes}), one per class")
    if not out.dtype.is_floating_point:
        raise fail(f"its output is {out.dtype}, not floating point", "return float logits")
    if not torch.isfinite(out).all():
        if _activation_is_user_code(config.activation) and _finite_with_relu(config, data, x):
            raise _fail("activation", config.activation, _activation_file(config.activation),
                        f"inside model '{name}' it gives NaN or inf on a real training batch (the model with relu "
                        "does not)", "keep the activation finite for every input, in tensors of any size")
        raise fail("its output holds NaN or inf on a real training batch",
                   "check its initialisation and any division, log or exp in forward")
    loss = F.cross_entropy(out.float(), y.to(out.device))
    if loss.requires_grad:
        _backward(loss, fail, "model", trainable)
    if not loss.requires_grad or all(p.grad is None for p in trainable):
        raise fail("no parameter receives a gradient from the loss",
                   "do not detach the output or run forward under torch.no_grad()")


def _build(config: RunConfig, data, activation: str) -> torch.nn.Module:
    """``config``'s model with ``activation``, built as the engine builds it."""
    return models.build(config.model, activation, data.input_shape, data.num_classes, init=config.init,
                        norm=config.norm, hidden_bias=config.hidden_bias, match_params=config.match_params,
                        allow_partial=config.allow_partial)


def _finite_with_relu(config: RunConfig, data, x: torch.Tensor) -> bool:
    """Is the model finite on ``x`` with relu in place of the run's activation? Then a
    non-finite output is the activation's doing, not the model's."""
    try:
        torch.manual_seed(config.seed)
        model = _build(config, data, "relu")
        with torch.no_grad():
            return bool(torch.isfinite(model.train()(x)).all())
    except Exception:  # noqa: BLE001 (the model's own failure: the model is blamed, as before)
        return False


# ---- the entry point --------------------------------------------------------------------------------------

def check(configs: Iterable[RunConfig], data_for: Callable[[RunConfig], object]) -> None:
    """Check every piece of user code ``configs`` name, once, before the sweep queues them.

    Each user activation alone; each (model, activation, data set) that holds user code
    built and run on one real batch of ``data_for(config)`` (a ``data.Prepared``, e.g.
    the sweep's ``DataCache.get``). Raises ``UserCodeError`` (an ``AfbenchError``) with
    the file, the name and the fix; built-in models with built-in activations are skipped."""
    configs = list(configs)
    check_activations(c.activation for c in configs)
    seen = set()
    for config in configs:
        if not (_model_is_user_code(config.model) or _activation_is_user_code(config.activation)):
            continue
        key = (config.model, config.activation, config.data_key(), config.device, config.init, config.norm,
               config.match_params, config.allow_partial, config.hidden_bias)
        if key in seen:
            continue
        seen.add(key)
        check_model(config, data_for(config))



"""Put the activation under test into a model built elsewhere, and prove it got everywhere.

``swap`` replaces every activation *module* (nn.ReLU, nn.GELU, ..., afbench's own,
timm's) with one built by the activation factory. ``check_complete`` then runs one
forward pass under a ``TorchFunctionMode`` that sees every torch function call: a
nonlinearity called as a function inside ``forward`` (``F.relu(x)``, ``x.relu()``,
``torch.sigmoid``) is one the swap could not reach, and the check names it with the
file and line that called it. Calls made by the swapped-in modules themselves do not
count: forward hooks track when the pass is inside one of them.

The sites afbench filled are kept on the model (``SITES_ATTR``, module paths in
forward order), so ``hidden_activations`` and the diagnostics find them.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from afbench import activations
from afbench.errors import AfbenchError

SITES_ATTR = "_afbench_sites"  # tuple of module paths, in forward order
LEFTOVER_ATTR = "_afbench_leftover"  # what check_complete found and allow_partial accepted

# Modules that are activations: replaced by swap. nn.GLU, nn.Softmax and nn.Identity are
# not: GLU halves the width, softmax normalises (attention, outputs), identity is structure.
TORCH_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.PReLU,
                     nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus,
                     nn.Softsign, nn.LogSigmoid, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Threshold)
# timm keeps its activation classes (Swish, GELUTanh, QuickGELU, HardSwishMe, ...) in these modules.
TIMM_ACTIVATION_MODULES = ("timm.layers.activations", "timm.models.layers.activations")

# Functions that are nonlinearities when called in forward (trailing '_' in-place forms too).
NONLINEAR_CALLS = frozenset({
    "relu", "relu6", "gelu", "silu", "mish", "tanh", "sigmoid", "elu", "selu", "celu", "leaky_relu", "prelu",
    "rrelu", "hardtanh", "hardsigmoid", "hardswish", "softplus", "softsign", "logsigmoid", "tanhshrink",
    "softshrink", "hardshrink", "threshold", "glu"})

_TORCH_DIR = str(Path(torch.__file__).resolve().parent)
_AFBENCH_DIR = str(Path(__file__).resolve().parents[1])


class Swapped(NamedTuple):
    path: str  # module path in the model, e.g. "features.3"
    old: type
    new: type


class Leftover(NamedTuple):
    call: str  # e.g. "F.relu", "torch.sigmoid", "x.relu()"
    where: str  # "file.py:LINE" of the first caller outside torch and afbench, or "unknown"
    module: str  # path of the innermost model module whose forward made the call ("" = the model)

    def __str__(self) -> str:
        inside = f" in forward of '{self.module}'" if self.module else " in the model's forward"
        return f"{self.call}{inside} at {self.where}"


def _afbench_activation_types() -> tuple[type, ...]:
    """Types of afbench's registered elementwise activations (the zoo may grow)."""
    found = set()
    for name in activations.names():
        spec = activations.info(name)
        if spec.width_multiplier == 1:
            try:
                module = activations.create(name)
            except Exception:  # an entry that cannot be built without arguments is not swapped out
                continue
            if not isinstance(module, nn.Identity):
                found.add(type(module))
    return tuple(found)


def is_activation(module: nn.Module, extra: tuple[type, ...] = ()) -> bool:
    """True for modules ``swap`` replaces."""
    if isinstance(module, TORCH_ACTIVATIONS + extra):
        return True
    return type(module).__module__.startswith(TIMM_ACTIVATION_MODULES)


def _as_input(example, model: nn.Module) -> torch.Tensor:
    """A probe batch of 2 (BatchNorm in training mode needs more than one sample)."""
    if torch.is_tensor(example):
        return example
    param = next(model.parameters(), None)
    device = param.device if param is not None else "cpu"
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, *tuple(example), generator=gen).to(device)


def _probe(model: nn.Module, example, watch: list[nn.Module], mode: TorchFunctionMode | None = None,
           training: bool = False) -> dict[int, list[tuple[int, ...]]]:
    """One forward pass without gradients; returns id(module) -> input shapes of each call to
    the ``watch`` modules. Leaves the model's mode, buffers (BatchNorm statistics) and the
    global RNG as they were."""
    calls: dict[int, list[tuple[int, ...]]] = {}
    depth = [0]

    def pre(module, inputs):
        depth[0] += 1
        calls.setdefault(id(module), []).append(tuple(inputs[0].shape) if inputs and torch.is_tensor(inputs[0])
                                                else ())

    def post(module, inputs, output):
        depth[0] -= 1

    hooks = [h for m in watch for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    was_training = model.training
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    rng = torch.random.get_rng_state()
    if mode is not None:
        mode.depth = depth
    try:
        model.train(training)
        with torch.no_grad():
            if mode is None:
                model(_as_input(example, model))
            else:
                with mode:
                    model(_as_input(example, model))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        torch.random.set_rng_state(rng)
    return calls


def forward_order(model: nn.Module, modules: list[tuple[str, nn.Module]], example) -> list[tuple[str, nn.Module]]:
    """``modules`` sorted by their first call in one forward pass; unused ones last."""
    calls = _probe(model, example, [m for _, m in modules])
    order = list(calls)
    return sorted(modules, key=lambda item: order.index(id(item[1])) if id(item[1]) in calls else len(order))


def swap(model: nn.Module, activation, example=None, *, allow_partial: bool = False,
         extra_types: tuple[type, ...] = ()) -> list[Swapped]:
    """Replace every activation module of ``model``, in place, with ``activation`` (a name,
    formula, module class or ``ActivationFactory``); return (path, old type, new type) of each.

    ``example`` (an input batch, or an input shape without the batch dimension) lets afbench
    run the model: it then puts the sites in forward order, gives per-channel activations
    (PReLU) the channel count of 2-D and 4-D inputs, and proves the swap complete with
    ``check_complete`` (refused unless ``allow_partial``). ``extra_types``: your own
    activation classes, to be swapped too. Width-multiplier activations (maxout, gated
    units) need a wider layer before them and are refused: build the model with an
    ``act_layer`` argument instead.
    """
    act = activations.factory(activation)
    if act.width_multiplier > 1:
        raise AfbenchError(
            f"'{act.name}' needs the layer before it {act.width_multiplier}x wider (width multiplier), so it cannot "
            "be swapped into a model whose layer widths are fixed. Fix: give your model builder an act_layer "
            "argument and build the layer before each activation with act_layer.width_multiplier times the width "
            "(afbench passes it), or use the built-in models")
    extra = tuple(extra_types) + _afbench_activation_types()
    earlier = set(sites(model) or ())  # a model swapped before: its sites, even identity ones
    found = [(name, m) for name, m in model.named_modules() if name and (name in earlier or is_activation(m, extra))]
    shapes = {}
    if example is not None and found:
        shapes = _probe(model, example, [m for _, m in found])
        order = list(shapes)
        found.sort(key=lambda item: order.index(id(item[1])) if id(item[1]) in shapes else len(order))
    replaced, done = [], {}
    for path, old in found:
        if id(old) not in done:  # one module called from two places stays one module
            done[id(old)] = act(_channels(old, shapes.get(id(old))))
        new = done[id(old)]
        parent, _, leaf = path.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, new)
        replaced.append(Swapped(path, type(old), type(new)))
    mark_sites(model, [s.path for s in replaced])
    if example is not None:
        check_complete(model, example, allow_partial=allow_partial)
    return replaced


def _channels(old: nn.Module, shapes: list[tuple[int, ...]] | None) -> int | None:
    """The channel count for a per-channel activation, where it can be known: an existing
    per-channel PReLU's, else dim 1 of a (N, C) or (N, C, H, W) input seen in the probe.
    Token inputs (N, T, C) are ambiguous: None (one shared parameter)."""
    if isinstance(old, nn.PReLU) and old.num_parameters > 1:
        return old.num_parameters
    if shapes and len({s[1:2] for s in shapes}) == 1 and len(shapes[0]) in (2, 4):
        return shapes[0][1]
    return None


def mark_sites(model: nn.Module, paths: list[str]) -> None:
    """Record the module paths of the activations afbench put into ``model`` (forward order)."""
    unique = list(dict.fromkeys(paths))
    object.__setattr__(model, SITES_ATTR, tuple(unique))


def sites(model: nn.Module) -> tuple[str, ...] | None:
    """The recorded activation sites of ``model``, or None for a model afbench built itself."""
    return getattr(model, SITES_ATTR, None)


def leftover(model: nn.Module) -> list[Leftover]:
    """Nonlinear calls the swap could not reach and ``allow_partial`` accepted ([] if none)."""
    return list(getattr(model, LEFTOVER_ATTR, ()))


class _NonlinearCalls(TorchFunctionMode):
    """Records nonlinear function calls made outside the afbench-placed activation modules."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.depth = [0]
        self.paths = {id(m): name for name, m in model.named_modules()}
        self.found: list[Leftover] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if self.depth[0] == 0 and name.rstrip("_") in NONLINEAR_CALLS:
            call = _describe(func)
            where, module = _caller(self.paths)
            if (call, where) not in {(f.call, f.where) for f in self.found}:
                self.found.append(Leftover(call, where, module))
        return func(*args, **(kwargs or {}))


def _describe(func) -> str:
    name = func.__name__
    qualname = getattr(func, "__qualname__", name)
    module = getattr(func, "__module__", None) or ""
    if qualname.startswith(("Tensor.", "TensorBase.", "_TensorBase.")) or getattr(func, "__objclass__", None):
        return f"x.{name}()"
    if module.startswith(("torch.nn.functional", "torch._C._nn")):
        return f"F.{name}"
    return f"torch.{name}"


def _caller(paths: dict[int, str]) -> tuple[str, str]:
    """(file:line of the first frame outside torch and afbench, path of the innermost model
    module whose forward is on the stack)."""
    where, module = "unknown", None
    frame = inspect.currentframe()
    while frame is not None:
        filename = str(Path(frame.f_code.co_filename).resolve()) if frame.f_code.co_filename[:1] != "<" \
            else frame.f_code.co_filename
        if where == "unknown" and not filename.startswith((_TORCH_DIR, _AFBENCH_DIR)):
            where = f"{filename}:{frame.f_lineno}"
        owner = frame.f_locals.get("self") if frame.f_code.co_name == "forward" else None
        if module is None and owner is not None and id(owner) in paths:
            module = paths[id(owner)]
        if where != "unknown" and module is not None:
            break
        frame = frame.f_back
    return where, module or ""


def check_complete(model: nn.Module, example, *, allow_partial: bool = False) -> list[Leftover]:
    """Run ``model`` on ``example`` (eval and training mode, no gradients, state restored)
    and find nonlinear functions called outside afbench's activation modules. Refused with
    an ``AfbenchError`` naming each call unless ``allow_partial``; returns what was found
    (also kept on the model, see ``leftover``)."""
    placed = [model.get_submodule(p) for p in (sites(model) or ())]
    found: list[Leftover] = []
    for training in (False, True):
        mode = _NonlinearCalls(model)
        _probe(model, example, placed, mode=mode, training=training)
        found += [f for f in mode.found if f not in found]
    object.__setattr__(model, LEFTOVER_ATTR, tuple(found))
    if found and not allow_partial:
        listed = "; ".join(str(f) for f in found)
        raise AfbenchError(
            f"the activation swap is incomplete: {type(model).__name__} calls {listed}. afbench cannot replace a "
            "function called inside forward(). Fix: use a module instead (e.g. self.act = nn.ReLU() and "
            "self.act(x)), or accept the model with these calls left as they are (--allow-partial; "
            "allow_partial=True), and the report says so")
    return found

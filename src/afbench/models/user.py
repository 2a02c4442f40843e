"""Your own model: ``PATH.py:NAME`` or ``package.module:NAME``, NAME a callable that
returns an ``nn.Module``.

afbench passes NAME the keyword arguments it names among ``act_layer``, ``num_classes``,
``in_chans``, ``input_shape`` and ``width_scale``. With ``act_layer`` (timm style: call it,
optionally with the channel count, to get one activation module; ``act_layer.width_multiplier``
says how much wider the layer before must be) the model builds its own activations;
without it, afbench swaps every activation module (``swap``). Either way one forward pass
proves that no nonlinearity is left outside afbench's reach (``check_complete``).

A model's identity is ``TARGET@HASH``: the import path plus the first 12 hex digits of
the SHA-256 of its source file, so an edited file is a new configuration.

A ``PATH.py`` model travels with the work to machines that do not see PATH (the Ray
backend): ``source`` reads the file on the driver, ``provide`` makes that copy loadable
in the worker under the same identity. A ``package.module`` model must be importable
there (installed, or shipped with Ray's ``runtime_env``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from afbench.activations import ActivationFactory
from afbench.errors import AfbenchError
from afbench.models.swap import check_complete, forward_order, mark_sites, swap

KNOWN_ARGS = ("act_layer", "num_classes", "in_chans", "input_shape", "width_scale")
_PATTERN = re.compile(r"^(?P<target>.+):(?P<attr>[A-Za-z_]\w*)(?:@(?P<hash>[0-9a-f]{12}))?$")
_LOADED: dict[tuple[str, str], object] = {}  # (source file, hash) -> module: each file runs once per process
_SHIPPED: dict[tuple[str, str], Path] = {}  # (the driver's path, hash) -> this machine's copy of that file


def is_user_model(name: str) -> bool:
    """True for 'PATH.py:NAME' and 'package.module:NAME' (with or without '@hash')."""
    return bool(_PATTERN.match(str(name).strip()))


@dataclass(frozen=True)
class ActLayer(ActivationFactory):
    """An ``ActivationFactory`` handed to a user's builder: it also accepts timm's
    ``inplace=`` (ignored: afbench's activations are out of place) and records every
    module it creates, so afbench knows the sites."""

    created: list = field(default_factory=list, compare=False, repr=False)

    def __call__(self, num_features: int | None = None, inplace: bool | None = None, **kwargs) -> nn.Module:
        if kwargs:
            raise AfbenchError(f"act_layer takes the channel count (and timm's inplace=) only, got {sorted(kwargs)}: "
                               "build the activation as act_layer(channels)")
        module = self.build(num_features)
        self.created.append(module)
        return module


def _split(name: str) -> tuple[str, str, str | None]:
    match = _PATTERN.match(str(name).strip())
    if not match:
        raise AfbenchError(f"'{name}' is not a model: give a built-in name, PATH.py:NAME or package.module:NAME")
    return match["target"], match["attr"], match["hash"]


def _source_file(target: str, digest: str | None = None) -> Path:
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if (str(path), digest) in _SHIPPED:
            return _SHIPPED[str(path), digest]
        if not path.is_file():
            raise AfbenchError(f"model file '{target}' does not exist: give PATH.py:NAME with an existing file")
        return path
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError) as err:
        spec, cause = None, f": {err}"
    else:
        cause = ""
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise AfbenchError(f"cannot find module '{target}'{cause}: install it, add its folder to PYTHONPATH, "
                           "or give PATH.py:NAME")
    return Path(spec.origin).resolve()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def identity(name: str) -> str:
    """'TARGET:NAME@HASH': the import path (a file path made absolute) and a short hash of
    the source file. An identity given back returns itself if the file is unchanged."""
    target, attr, given = _split(name)
    path = _source_file(target, given)
    digest = _digest(path)
    if given and given != digest:
        raise AfbenchError(f"model file {path} changed since this configuration was made (hash {given}, now "
                           f"{digest}): restore the file, or start a new run with {target}:{attr}")
    shown = str(Path(target).expanduser().resolve()) if target.endswith(".py") else target
    return f"{shown}:{attr}@{digest}"


def source(ident: str) -> bytes | None:
    """The bytes of the model file behind ``ident`` (an identity, 'PATH.py:NAME@HASH'),
    to send where PATH may not exist; None for a package.module model."""
    target, _, digest = _split(identity(ident))
    return _source_file(target, digest).read_bytes() if target.endswith(".py") else None


def provide(ident: str, data: bytes) -> None:
    """Let this process load ``ident`` from ``data``, the file's bytes read elsewhere. Where
    PATH exists here with the same hash (a shared file system), PATH itself is used, so its
    imports of files beside it work; otherwise a copy is written to a folder of this user's
    under the temp folder, named by the hash, and used instead (a lone file: it cannot
    import files beside it)."""
    target, _, digest = _split(ident)
    actual = hashlib.sha256(data).hexdigest()[:12]
    if digest != actual:
        raise AfbenchError(f"the copy of {target} sent for model {ident} has hash {actual}, not {digest}: "
                           "the file changed while the sweep was starting; start it again")
    original = Path(target).expanduser().resolve()
    if original.is_file() and _digest(original) == digest:
        return
    folder = _private_folder() / digest
    folder.mkdir(mode=0o700, exist_ok=True)
    copy = folder / original.name
    if not copy.is_file() or copy.read_bytes() != data:
        partial = copy.with_name(f".{copy.name}.{os.getpid()}")
        partial.write_bytes(data)
        partial.replace(copy)  # atomic: tasks on one machine may write it at once
    _SHIPPED[str(original), digest] = copy


def _private_folder() -> Path:
    """afbench-models-UID under the temp folder, this user's alone (0700)."""
    folder = Path(tempfile.gettempdir()) / f"afbench-models-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise AfbenchError(f"{folder} belongs to another user or is open to others: remove it, or set TMPDIR "
                           "to a folder of yours")
    return folder


def _module(target: str, path: Path, digest: str):
    key = (str(path), digest)
    if key in _LOADED:
        return _LOADED[key]
    try:
        if target.endswith(".py"):
            module_name = f"afbench_user_{path.stem}_{digest}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # dataclasses and pickle look classes up here
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
        else:
            module = importlib.import_module(target)
    except SyntaxError as err:
        raise AfbenchError(f"model file {err.filename}:{err.lineno} has a syntax error: {err.msg}") from None
    except Exception as err:
        shipped = " (this is the copy sent with the task: a lone file, so it cannot import files beside it; put " \
                  "them in a package installed on every node, or ship them with Ray's runtime_env)" \
            if path in _SHIPPED.values() and isinstance(err, ImportError) else ""
        raise AfbenchError(f"importing model {target} failed: {type(err).__name__}: {err}{shipped}") from err
    _LOADED[key] = module
    return module


def load(name: str) -> tuple[Callable[..., nn.Module], str]:
    """(the builder NAME, the model's identity)."""
    target, attr, _ = _split(name)
    ident = identity(name)
    digest = ident.rsplit("@", 1)[1]
    module = _module(target, _source_file(target, digest), digest)
    builder = getattr(module, attr, None)
    if builder is None or not callable(builder):
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise AfbenchError(f"{target} has no callable '{attr}'. Callables there: {', '.join(public) or 'none'}")
    return builder, ident


def accepted(builder: Callable) -> set[str]:
    """Which of KNOWN_ARGS the builder names; others it requires are an error."""
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return set()
    required = [n for n, p in params.items() if p.default is p.empty and n not in KNOWN_ARGS
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if required:
        raise AfbenchError(f"model builder {getattr(builder, '__name__', builder)} requires {', '.join(required)}, "
                           f"which afbench cannot give: afbench passes only {', '.join(KNOWN_ARGS)}. "
                           "Give the others defaults")
    return {n for n in params if n in KNOWN_ARGS}


def build(name: str, act: ActivationFactory, input_shape: tuple[int, ...], num_classes: int, *,
          width_scale: float = 1.0, allow_partial: bool = False, check: bool = True) -> nn.Module:
    """Build the user's model ``name`` with ``act`` in every activation place.

    ``check=False`` skips the forward passes (parameter counting for --match-params)."""
    builder, ident = load(name)
    wanted = accepted(builder)
    layer = ActLayer(act.name, act.build, act.width_multiplier)
    given = {"act_layer": layer, "num_classes": num_classes, "in_chans": input_shape[0],
             "input_shape": tuple(input_shape), "width_scale": width_scale}
    if width_scale != 1.0 and "width_scale" not in wanted:
        raise AfbenchError(f"{ident}: --match-params needs the builder to take a width_scale argument "
                           "(scale its hidden widths by it)")
    try:
        model = builder(**{k: v for k, v in given.items() if k in wanted})
    except AfbenchError:
        raise
    except Exception as err:
        raise AfbenchError(f"model builder {ident} failed: {type(err).__name__}: {err}") from err
    if not isinstance(model, nn.Module):
        raise AfbenchError(f"model builder {ident} returned {type(model).__name__}, not an nn.Module")
    example = tuple(input_shape) if check else None
    if check:
        if not any(p.requires_grad for p in model.parameters()):
            raise AfbenchError(f"model {ident} has no trainable parameters, so there is nothing to train. Fix: create "
                               "its layers in __init__ as attributes (self.fc = nn.Linear(...)), in nn.Sequential "
                               "or nn.ModuleList, not in a plain list or inside forward")
        _check_output(model, input_shape, num_classes, ident)
    if "act_layer" in wanted:
        _record_act_layer_sites(model, layer, example, ident)
        if check:
            check_complete(model, example, allow_partial=allow_partial)
    elif not swap(model, act, example, allow_partial=allow_partial):
        raise AfbenchError(f"{ident} has no activation module to swap: use modules such as nn.ReLU(), or take "
                           "an act_layer argument")
    object.__setattr__(model, "afbench_identity", ident)
    return model


def _record_act_layer_sites(model: nn.Module, layer: ActLayer, input_shape, ident: str) -> None:
    ids = {id(m) for m in layer.created}
    placed = [(name, m) for name, m in model.named_modules() if id(m) in ids]
    if not placed:
        raise AfbenchError(f"{ident} takes act_layer but put none of its modules into the model: "
                           "call act_layer(channels) for each activation and keep the module")
    if input_shape is not None:
        placed = forward_order(model, placed, tuple(input_shape))
    mark_sites(model, [name for name, _ in placed])


def _check_output(model: nn.Module, input_shape, num_classes: int, ident: str) -> None:
    """The model must take (N, *input_shape) and return (N, num_classes) logits."""
    param = next(model.parameters(), None)
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape, device=param.device if param is not None else "cpu"))
    except Exception as err:
        raise AfbenchError(f"model {ident} fails on a batch of shape (2, {', '.join(map(str, input_shape))}): "
                           f"{type(err).__name__}: {err}. Fix: make its forward take float images (batch, "
                           f"{', '.join(map(str, input_shape))}) and return logits (batch, {num_classes})") from None
    finally:
        model.train(was)
    if not torch.is_tensor(out) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise AfbenchError(f"{ident} must return logits of shape (batch, {num_classes}), got {got}")

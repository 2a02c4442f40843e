"""User-supplied activations: an import path ('pkg.mod:Name') or a formula in x.

A formula is parsed with ``ast`` and compiled into a tree of closures over a
whitelist of torch functions. Python's eval never sees it, so a string such as
``__import__('os')`` is rejected before anything runs.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import operator
import re
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

from afbench.errors import AfbenchError
from afbench.activations.modules import Lambda

Tensor = torch.Tensor
Expr = Callable[[Tensor], Tensor]

FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "abs": torch.abs, "cos": torch.cos, "cosh": torch.cosh, "erf": torch.erf, "exp": torch.exp,
    "log": torch.log, "log1p": torch.log1p, "relu": F.relu, "sigmoid": torch.sigmoid, "sin": torch.sin,
    "sinh": torch.sinh, "softplus": F.softplus, "softsign": F.softsign, "sqrt": torch.sqrt, "tanh": torch.tanh,
    "sign": torch.sign, "maximum": torch.maximum, "minimum": torch.minimum,
    "where": torch.where,  # where(condition, a, b)
}
CONSTANTS = {"pi": torch.pi, "e": torch.e}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_COMPARE = {ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


class FormulaError(AfbenchError, ValueError):
    """A formula used something outside the whitelist, or is not valid syntax."""


def looks_like_formula(text: str) -> bool:
    """Registry names are bare words ('relu', 'leaky-relu'); anything else is a formula."""
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", text.strip()) is None


def compile_formula(text: str) -> Expr:
    """Compile ``text`` (an expression in x) to a function of a tensor."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise FormulaError(f"formula {text!r} is not a valid expression: {err.msg}. Write one Python expression "
                           "in x, such as 'x*sigmoid(1.5*x)' or 'where(x > 0, x, 0.1*x)'") from None
    expr = _compile(tree.body, text)
    probe = expr(torch.linspace(-2, 2, 5))  # fail now, not in the middle of training
    if not torch.is_tensor(probe) or probe.shape != (5,):
        raise FormulaError(f"formula {text!r} must give one value per element of x")
    if not probe.dtype.is_floating_point:
        raise FormulaError(f"formula {text!r} gives {str(probe.dtype).removeprefix('torch.')} values, not numbers: "
                           "a comparison is true or false; write where(x > 0, x, 0 * x), or (x > 0) * 1.0 for a step")
    return expr


def _compile(node: ast.AST, text: str) -> Expr:
    if isinstance(node, ast.Name):
        if node.id == "x":
            return lambda x: x
        if node.id in CONSTANTS:
            return _constant(CONSTANTS[node.id])
        raise _reject(text, f"unknown name '{node.id}'")
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return _constant(float(node.value))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op, left, right = _BINARY[type(node.op)], _compile(node.left, text), _compile(node.right, text)
        return lambda x: op(left(x), right(x))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        op, operand = _UNARY[type(node.op)], _compile(node.operand, text)
        return lambda x: op(operand(x))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        op, left, right = _COMPARE[type(node.ops[0])], _compile(node.left, text), _compile(node.comparators[0], text)
        return lambda x: op(left(x), right(x))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in FUNCTIONS:
            raise _reject(text, f"function '{node.func.id}' is not allowed")
        fn, args = FUNCTIONS[node.func.id], [_compile(arg, text) for arg in node.args]
        _check_arguments(text, node.func.id, fn, len(args))
        return lambda x: fn(*(arg(x) for arg in args))
    raise _reject(text, f"'{ast.unparse(node)}' is not allowed")


def _check_arguments(text: str, name: str, fn: Callable, count: int) -> None:
    """Refuse ``name`` called with ``count`` arguments where it takes another number,
    in one sentence (torch's own message lists every signature it has)."""
    try:  # 0-dim tensors, as a formula's numbers are (softplus's beta takes one)
        fn(*[torch.zeros(()) > 0 if name == "where" and i == 0 else torch.zeros(()) for i in range(count)])
    except TypeError as err:
        said = str(err).split("\n")[0].split(" - got")[0].split(", but expected")[0].rstrip(":")
        raise FormulaError(f"formula {text!r}: {name}() with {count} argument{'s' if count != 1 else ''}: {said}. "
                           "where takes 3 (where(x > 0, x, 0.1 * x)), maximum and minimum 2, softplus 1 to 3 "
                           "(x, beta, threshold), the others 1") from None
    except Exception:  # noqa: BLE001 (values, not the count: the formula's probe decides)
        return


def _constant(value: float) -> Expr:
    # A 0-dim tensor broadcasts without changing x's dtype (bf16 stays bf16).
    scalar = torch.tensor(value)
    return lambda x: scalar


def _reject(text: str, why: str) -> FormulaError:
    return FormulaError(
        f"formula {text!r} rejected: {why}. Formulas may use x, numbers, pi, e, + - * / **, "
        f"comparisons and the functions {', '.join(sorted(FUNCTIONS))}."
    )


def _defined(module, attr: str) -> str:
    """What ``module`` defines that could be an activation, as a sentence with the fix."""
    def own(value) -> bool:
        return getattr(value, "__module__", None) == module.__name__

    names = vars(module)
    classes = sorted(n for n, v in names.items() if not n.startswith("_") and own(v) and inspect.isclass(v)
                     and issubclass(v, nn.Module))
    functions = sorted(n for n, v in names.items() if not n.startswith("_") and own(v) and inspect.isfunction(v))
    found = [f"nn.Module classes: {', '.join(classes)}" if classes else "",
             f"functions: {', '.join(functions)}" if functions else ""]
    found = "; ".join(f for f in found if f)
    if not found:
        return f"It defines no nn.Module class or function: define {attr} there, or name the file that does"
    return f"It defines {found}: name one of them after the ':'"


def import_activation(path: str) -> Callable[[int | None], nn.Module]:
    """Resolve 'package.module:Name' to a factory of modules.

    Name may be an nn.Module subclass (instantiated with no arguments) or a
    function of one tensor (wrapped in a module).
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise AfbenchError(f"custom activation '{path}' must look like 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise AfbenchError(f"cannot import custom activation '{path}': {err}. "
                           "Is the module on PYTHONPATH?") from None
    if not hasattr(module, attr):  # the module was found: PYTHONPATH is not the problem
        raise AfbenchError(f"custom activation '{path}': {getattr(module, '__file__', None) or module_name} was "
                           f"found but defines no '{attr}'. {_defined(module, attr)}") from None
    target = getattr(module, attr)
    if inspect.isclass(target) and issubclass(target, nn.Module):
        required = required_arguments(target)
        if required:
            where = getattr(inspect.getmodule(target), "__file__", module_name)
            raise AfbenchError(f"custom activation '{path}' ({where}): its __init__ requires {', '.join(required)}, "
                               "but afbench builds an activation with no arguments. Fix: give "
                               f"{', '.join(required)} a default (def __init__(self, {required[0]}=1.0))")
        return lambda num_features=None: target()
    if callable(target):
        return lambda num_features=None: Lambda(target, path)
    raise AfbenchError(f"custom activation '{path}' is neither an nn.Module class nor a function")


def required_arguments(cls: type) -> list[str]:
    """The parameters of ``cls.__init__`` that have no default (self and *args, **kwargs aside)."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                                         p.KEYWORD_ONLY)]

"""The package's layers, checked on every test run so the layout stays true.

From the bottom up (a module may import its own layer and the layers below it, never
one above, and no two modules may import each other in a circle, directly or not):

    0  errors, plugins, rules       names, errors and the value rules every layer uses
    1  config, results, stats       what a run is, what it produced, the paired statistics
    2  data, activations            real data; the activation zoo and its kernels
    3  models                       architectures built from an activation factory
    4  workloads, store, usercode   data + model + loss + metric; the results database; user code checked once
    5  engine                       the one training step, evaluation, timing
    6  cost                         what an activation costs (time, memory, export)
    7  sweep                        the grid, resumable execution, backends
    8  report                       tables, verdicts, figures, writers (never the engine)
    9  export, studies, suite       TensorBoard and MLflow; the lecture's studies; the suite (sweep + report)
    10 cli, afbench (the package)   the commands: thin shells over the library

Imports inside functions count the same as top-level ones: a lazy import that only
dodges a cycle is still the cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "afbench"
LAYERS = {
    "errors": 0, "plugins": 0, "rules": 0,
    "config": 1, "results": 1, "stats": 1,
    "data": 2, "activations": 2,
    "models": 3,
    "workloads": 4, "store": 4, "usercode": 4,
    "engine": 5,
    "cost": 6,
    "sweep": 7,
    "report": 8,
    "export": 9,
    "studies": 9,
    "suite": 9,
    "cli": 10, "__init__": 10, "__main__": 10, "presets": 10,
}
EXCEPTIONS = {("report", "engine"): "never"}  # style rule 10: the report never imports the engine


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _exists(module: str) -> bool:
    path = SRC.parent / Path(*module.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


def _imports(path: Path) -> set[str]:
    """Every afbench module ``path`` imports, at any depth of the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("afbench")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("afbench"):
                continue
            if module == "afbench" and {alias.name for alias in node.names} == {"__version__"}:
                continue  # the version string is a constant, not the package's imports
            # `from afbench.report import render` imports the module afbench.report.render; the
            # package itself counts only where a name is taken from its __init__
            submodules = {f"{module}.{alias.name}" for alias in node.names if _exists(f"{module}.{alias.name}")}
            found |= submodules
            if len(submodules) < len(node.names):
                found.add(module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules} - {name} for name, path in modules.items()}


def _layer(module: str) -> tuple[str, int]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    assert top in LAYERS, f"{module}: package afbench.{top} has no layer: add it to LAYERS and the docstring"
    return top, LAYERS[top]


def test_no_import_runs_up_a_layer():
    upward = []
    for module, imported in _graph().items():
        top, level = _layer(module)
        for other in imported:
            other_top, other_level = _layer(other)
            if other_level > level or EXCEPTIONS.get((top, other_top)) == "never":
                upward.append(f"{module} (layer {level}) imports {other} (layer {other_level})")
    assert not upward, "imports that run up the layers:\n" + "\n".join(sorted(upward))


def _package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_import_cycles_between_modules():
    graph = _graph()
    # a package's __init__ re-exporting its own modules is not a cycle of the design
    edges = {m: {o for o in imported if not (o == _package_of(m) and m.startswith(o + "."))}
             for m, imported in graph.items()}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_a_planted_upward_import(tmp_path, monkeypatch):
    """The walk must find imports inside functions, or the layer test proves nothing."""
    fake = tmp_path / "afbench"
    (fake / "data").mkdir(parents=True)
    (fake / "report").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "data" / "__init__.py").write_text("def f():\n    from afbench.report import render\n")
    (fake / "report" / "__init__.py").write_text("")
    (fake / "report" / "render.py").write_text("from afbench.data import f\n")
    monkeypatch.setattr(__import__(__name__), "SRC", fake)
    with pytest.raises(AssertionError, match="afbench.data .*imports afbench.report"):
        test_no_import_runs_up_a_layer()
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycles_between_modules()

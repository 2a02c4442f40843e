"""Issue 24, backends: one driver for every backend, a backend chosen by name from the
registry, an explicit protocol, and imports that run one way (cost never imports the
sweep or the report)."""

import ast
from pathlib import Path

import pytest

from afbench.config import RunConfig
from afbench.errors import UnknownNameError
from afbench.store.database import Store
from afbench.sweep import Grid, LocalBackend, Runtime, execute
from afbench.sweep.backends import BACKENDS, Backend, create
from afbench.sweep.jobs import train_job
from afbench.sweep.prepared import DataCache

SRC = Path(__file__).resolve().parents[1] / "src" / "afbench"
SMALL = RunConfig(epochs=1, batch_size=256, train_subset=256, latency_samples=5, probe_size=64)


def test_backends_are_chosen_by_name_from_the_registry():
    assert {"local", "ray"} <= set(BACKENDS.names())
    backend = create("LOCAL", Runtime(progress=False))
    assert isinstance(backend, LocalBackend) and isinstance(backend, Backend)
    with pytest.raises(UnknownNameError, match="unknown backend 'slurm'.*Valid: .*local.*ray"):
        create("slurm")


def test_the_ray_backend_is_built_as_the_command_line_builds_it():
    """``afbench run --backend ray`` passes a RayOptions; a library user may pass its fields."""
    pytest.importorskip("ray")
    from afbench.sweep.backends.ray import RayBackend, RayOptions

    options = RayOptions("auto", cpus_per_run=2.0)
    built = create("ray", Runtime(progress=False), options=options)
    assert isinstance(built, RayBackend) and built.options is options
    assert create("ray", Runtime(progress=False), address="auto").options.address == "auto"


class InlineBackend:
    """A backend a plugin could add: it only says how a batch of jobs runs (here, in this
    process, one after the other); claiming, recording and releasing are the driver's."""

    name = "inline"

    def __init__(self, runtime: Runtime = Runtime()):
        self.runtime, self.cache, self.trained = runtime, DataCache(), []

    def check(self, configs):
        pass

    def data(self, config):
        return self.cache.get(config)

    def plan(self, pending):
        return {"workers": 1, "threads": 1, "stack": 1, "how": "inline"}

    def call(self, task, *args, timeout_s=None):
        return task(self.cache, *args)

    def run(self, jobs, sink, plan):
        for job in jobs:
            self.trained.append(job.label)
            sink.started(job)
            results = train_job(job, self.cache.get(job.configs[0]), lambda m, r: sink.epoch(job, m, r))
            sink.finished(job, results)

    def close(self, kill=False):
        pass


def test_the_driver_claims_records_and_resumes_for_any_registered_backend(tmp_path):
    BACKENDS.register("inline", InlineBackend)
    backend = create("inline", Runtime(progress=False, cost="off"))
    assert isinstance(backend, Backend)
    grid = Grid(SMALL, ("relu", "tanh"), seeds=(0, 1))
    assert execute(grid, tmp_path, backend, device="cpu").counts == {"ran": 4, "skipped": 0, "failed": 0}
    store = Store(tmp_path)
    runs = store.runs()
    assert len(runs) == 4 and all(r["status"] == "done" and r["attempts"] == 1 for r in runs)
    assert len(store.epochs()) == 4 and store.meta()["scheduler"]["how"] == "inline"
    store.close()
    again = create("inline", Runtime(progress=False, cost="off"))
    assert execute(grid, tmp_path, again, device="cpu").counts == {"ran": 0, "skipped": 4, "failed": 0}
    assert again.trained == []  # the driver claimed nothing: nothing reached the backend


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_cost_imports_neither_the_sweep_nor_the_report():
    files = sorted((SRC / "cost").glob("*.py"))
    assert files
    for path in files:
        wrong = {m for m in _imports(path) if m.startswith(("afbench.sweep", "afbench.report", "afbench.cli"))}
        assert not wrong, f"{path.name} imports {wrong}"


def test_the_backends_do_not_import_each_other_or_the_report():
    for path in sorted((SRC / "sweep" / "backends").glob("*.py")):
        imported = _imports(path)
        assert not {m for m in imported if m.startswith(("afbench.report", "afbench.cli"))}, path.name
        if path.stem in ("local", "ray"):
            other = "ray" if path.stem == "local" else "local"
            assert f"afbench.sweep.backends.{other}" not in imported, path.name

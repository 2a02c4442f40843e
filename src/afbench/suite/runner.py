"""Running a suite: train only what is new, next to the runs it is judged against.

With stored baselines (the default) the shipped runs are merged into the out folder
first and only the new activations train, with the suite's seeds and settings, so
they pair by seed with the stored ones; the cost profile (step times) is measured
here, for the new activations and the suite's baseline. ``mode="local"`` trains the
baseline here too; ``mode="none"`` trains exactly the activations given (how the
stored baselines themselves are made: ``activations=None`` means the suite's own)."""

from __future__ import annotations

from pathlib import Path

from afbench.config import RunConfig
from afbench.errors import AfbenchError
from afbench.store.merge import merge
from afbench.suite import baselines
from afbench.suite.definition import Suite
from afbench.sweep import Outcome, Runtime, execute
from afbench.sweep.backends import create
from afbench.sweep.execute import resolve


def configs_for(suite: Suite, activations: tuple[str, ...] | None, mode: str) -> list[list[RunConfig]]:
    """The runs the suite trains here, one list per workload: the activations given
    (with the suite's baseline first when it trains locally), or, for
    ``activations=None``, the stored activations of that workload."""
    configs = []
    for workload in suite.workloads:
        if activations is None:
            names = suite.stored_activations(workload)
        elif mode == "local":
            names = (suite.baseline,) + tuple(a for a in activations if a != suite.baseline)
        else:
            names = activations
        configs.append(workload.configs(names, suite.seeds))
    return configs


def run_suite(suite: Suite, activations: tuple[str, ...] | None, out: str | Path, *, mode: str = "stored",
              runtime: Runtime | None = None, device: str = "auto", stored: str | Path | None = None) -> Outcome:
    """Train the suite's runs of ``activations`` (canonical names) into ``out`` and
    return the outcome; resumable like any sweep. Raises AfbenchError, before anything
    trains, when stored baselines would not pair with runs made here. ``stored``: a
    results database of the suite's baselines to use instead of the shipped one."""
    if mode not in baselines.MODES:
        raise AfbenchError(f"unknown --baselines '{mode}': use {', '.join(baselines.MODES)}")
    if activations is not None and not activations:
        raise AfbenchError("give the activations to judge: --activations NAME[,NAME...]")
    workloads = [resolve(configs, device) for configs in configs_for(suite, activations, mode)]
    runtime = runtime or Runtime(progress=False, cost="on", baseline=suite.baseline)
    backend = create("local", runtime)
    backend.check([c for configs in workloads for c in configs])  # bad data or a broken activation: before anything
    stored = baselines.check_pairable(suite, workloads[0][0].device, stored) if mode == "stored" else None
    baselines.record(out, suite, mode)
    if stored is not None:
        merge([stored], Path(out), timings=False)  # step times are measured here; runs already there stay once
    counts = {"ran": 0, "skipped": 0, "failed": 0}
    for configs in workloads:  # one sweep per workload: each calibrates its own workers, stacking and time limit
        outcome = execute(configs, out, backend, resolved=True, baseline=suite.baseline)
        counts = {k: counts[k] + outcome.counts.get(k, 0) for k in counts}
    return Outcome(counts, [c for configs in workloads for c in configs])

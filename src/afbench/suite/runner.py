"""Running a suite: train only what is new, next to the runs it is judged against.

With stored baselines (the default) the shipped runs are merged into the out folder
first and only the new activations train, with the suite's seeds and settings, so
they pair by seed with the stored ones; the cost profile (step times) is measured
here, for the new activations and the suite's baseline. ``mode="local"`` trains the
baseline here too; ``mode="none"`` trains exactly the activations given (how the
stored baselines themselves are made: ``activations=None`` means the suite's own)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from afbench.config import RunConfig
from afbench.errors import AfbenchError, Interrupted
from afbench.store.database import FINISHED
from afbench.store.merge import merge
from afbench.store.reading import StoreView
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


@dataclass
class Plan:
    """A suite run checked and resolved, before anything is written."""
    suite: Suite
    mode: str
    workloads: list[list[RunConfig]]  # the runs to train, one list per workload
    backend: object
    stored: Path | None  # the stored baselines to merge in first


def plan_suite(suite: Suite, activations: tuple[str, ...] | None, out: str | Path, *, mode: str = "stored",
               runtime: Runtime | None = None, device: str = "auto", stored: str | Path | None = None) -> Plan:
    """Every check that can refuse a suite run, before anything is written: the mode,
    the data and activations, and whether stored runs (and runs already in ``out``)
    pair with runs made here."""
    if mode not in baselines.MODES:
        raise AfbenchError(f"unknown --baselines '{mode}': use {', '.join(baselines.MODES)}")
    if activations is not None and not activations:
        raise AfbenchError("give the activations to judge: --activations NAME[,NAME...]")
    if stored is not None and mode != "stored":
        raise AfbenchError(f"--stored gives stored baselines to pair with; --baselines {mode} uses none")
    workloads = [resolve(configs, device) for configs in configs_for(suite, activations, mode)]
    backend = create("local", runtime or Runtime(progress=False, cost="on", baseline=suite.baseline))
    backend.check([c for configs in workloads for c in configs])  # bad data or a broken activation
    device_used = workloads[0][0].device
    path = baselines.check_pairable(suite, device_used, stored) if mode == "stored" else None
    baselines.check_folder(out, device_used)
    return Plan(suite, mode, workloads, backend, path)


def execute_plan(plan: Plan, out: str | Path) -> Outcome:
    """Merge the stored baselines into ``out`` and train the plan's runs (``prepare_folder``
    then ``train_plan``)."""
    prepare_folder(plan, out)
    return train_plan(plan, out)


def prepare_folder(plan: Plan, out: str | Path) -> None:
    """Record the suite in ``out`` and merge its stored baselines in (when the plan uses them)."""
    baselines.record(out, plan.suite, plan.mode)
    if plan.stored is not None:
        merge([plan.stored], Path(out), timings=False)  # step times are measured here; runs already there stay once


def planned_keys(plan: Plan) -> set[str]:
    """The keys of the runs the plan trains (not the stored ones it pairs them with)."""
    return {c.key() for configs in plan.workloads for c in configs}


def train_plan(plan: Plan, out: str | Path) -> Outcome:
    """Train the plan's runs not finished in ``out``, one sweep per workload (each
    calibrates its own workers, stacking and time limit)."""
    counts = {"ran": 0, "skipped": 0, "failed": 0}
    every = [c for configs in plan.workloads for c in configs]
    for configs in plan.workloads:
        try:
            outcome = execute(configs, out, plan.backend, resolved=True, baseline=plan.suite.baseline)
        except Interrupted as stop:  # it counts this workload's sweep alone: say what the whole suite saved
            raise Interrupted(saved(out, every), len(every), stop.signal_number) from None
        counts = {k: counts[k] + outcome.counts.get(k, 0) for k in counts}
    return Outcome(counts, every)


def saved(out: str | Path, configs: list[RunConfig]) -> int:
    """How many of ``configs`` are finished in ``out`` (done or diverged: never trained
    again on resume), whichever sweep or earlier suite run finished them. Read back
    from the database, as the sweeps that finished them are gone."""
    with StoreView(out) as view:
        finished = {row["key"] for row in view.run_rows() if row["status"] in FINISHED}
    return sum(c.key() in finished for c in configs)


def run_suite(suite: Suite, activations: tuple[str, ...] | None, out: str | Path, *, mode: str = "stored",
              runtime: Runtime | None = None, device: str = "auto", stored: str | Path | None = None) -> Outcome:
    """Train the suite's runs of ``activations`` (canonical names) into ``out`` and
    return the outcome; resumable like any sweep. Raises AfbenchError, before anything
    is written, when stored baselines would not pair with runs made here. ``stored``: a
    results database of the suite's baselines to use instead of the shipped one."""
    return execute_plan(plan_suite(suite, activations, out, mode=mode, runtime=runtime, device=device,
                                   stored=stored), out)
